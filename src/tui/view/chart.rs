//! The daily usage chart, one bar per UTC day. A week is a bar chart with the day and the value
//! on every bar; longer ranges are a chart with labelled axes (at most three dates, values with
//! their unit), since 30 or 90 labelled bars cannot fit a terminal.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Bar, BarChart, BarGroup, Block, Borders, Chart, Dataset, GraphType, Paragraph};

use crate::domain::DailyUsage;
use crate::service::UsageSeries;
use crate::tui::state::{Metric, State};

use super::format::compact_count;

/// Up to this many days, one labelled bar per day.
const BAR_CHART_MAX_DAYS: usize = 7;

impl Metric {
    fn title(self) -> &'static str {
        match self {
            Metric::Requests => "Requests per day",
            Metric::Tokens => "Tokens per day",
            Metric::Cost => "Cost per day (USD)",
        }
    }

    /// Floats only for plotting: money is exact everywhere else.
    fn value(self, day: &DailyUsage) -> f64 {
        match self {
            Metric::Requests => day.requests as f64,
            Metric::Tokens => day.tokens as f64,
            Metric::Cost => day.cost.as_f64_usd(),
        }
    }

    /// A bar's height: whole units, micro-dollars for cost.
    fn bar_value(self, day: &DailyUsage) -> u64 {
        let value = match self {
            Metric::Requests => day.requests,
            Metric::Tokens => day.tokens,
            Metric::Cost => day.cost.micros(),
        };
        u64::try_from(value).unwrap_or(0)
    }

    /// A value as written on a bar: `$1.24`, `$120`, `12.3k`.
    fn short(self, value: f64) -> String {
        match self {
            // A few requests can cost less than a cent: not "$0.00" on a bar that shows.
            Metric::Cost if value > 0.0 && value < 0.01 => "<$0.01".into(),
            Metric::Cost if value < 10.0 => format!("${value:.2}"),
            Metric::Cost => format!("${}", compact_count(value)),
            Metric::Requests | Metric::Tokens => compact_count(value),
        }
    }

    /// A value on the y axis, with its unit: `$0.63`, `120 req`, `1.2M tokens`.
    fn axis_label(self, value: f64) -> String {
        match self {
            Metric::Cost => self.short(value),
            Metric::Requests => format!("{} req", compact_count(value)),
            Metric::Tokens => format!("{} tokens", compact_count(value)),
        }
    }
}

/// The chart of any daily series (a key's, a user's, the fleet's), oldest day first.
pub fn render_daily(frame: &mut Frame, state: &State, metric: Metric, daily: &[DailyUsage], area: Rect) {
    let theme = &state.session.theme;
    let days = daily.len();
    let title = Line::styled(format!(" {} · last {days} days, UTC ", metric.title()), theme.title);
    // Only a top rule: the detail around it already has a border, and rows are precious.
    let block = Block::new().borders(Borders::TOP).border_style(theme.border).title(title);
    if daily.iter().all(|day| day.requests == 0) {
        // Empty axes scaled to an invented top would look like a chart of zeros.
        let note = Line::styled(format!("No requests in the last {days} days"), theme.muted);
        let vertical_middle = block.inner(area).height.saturating_sub(1) / 2;
        let padded: Vec<Line> =
            std::iter::repeat_n(Line::default(), usize::from(vertical_middle)).chain([note]).collect();
        frame.render_widget(Paragraph::new(padded).centered().block(block), area);
    } else if days <= BAR_CHART_MAX_DAYS {
        bar_chart(frame, state, metric, daily, block, area);
    } else {
        line_chart(frame, state, metric, daily, block, area);
    }
}

fn bar_chart(frame: &mut Frame, state: &State, metric: Metric, daily: &[DailyUsage], block: Block, area: Rect) {
    let theme = &state.session.theme;
    let days = daily.len().max(1) as u16;
    let bar_width = ((area.width + 1) / days).saturating_sub(1).max(1);
    // `Mon 24` when it fits, else the weekday alone (unique within a week), else the date.
    let label_format = match bar_width {
        6.. => "%a %d",
        3.. => "%a",
        _ => "%d",
    };
    let bars: Vec<Bar> = daily
        .iter()
        .map(|day| {
            Bar::default()
                .value(metric.bar_value(day))
                .text_value(metric.short(metric.value(day)))
                .label(Line::from(day.day.format(label_format).to_string()))
        })
        .collect();
    let chart = BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_width)
        .bar_gap(1)
        .bar_style(theme.chart)
        .value_style(theme.chart.add_modifier(Modifier::REVERSED | Modifier::BOLD))
        .label_style(theme.muted);
    frame.render_widget(chart, area);
}

fn line_chart(frame: &mut Frame, state: &State, metric: Metric, daily: &[DailyUsage], block: Block, area: Rect) {
    let theme = &state.session.theme;
    // Days without usage get no bar at all rather than a sliver on the axis.
    let points: Vec<(f64, f64)> = daily
        .iter()
        .enumerate()
        .map(|(index, day)| (index as f64, metric.value(day)))
        .filter(|&(_, value)| value > 0.0)
        .collect();
    let highest = points.iter().map(|&(_, value)| value).fold(0.0, f64::max);
    // Headroom above the tallest bar; requests that cost nothing still get a readable axis.
    let top = if highest > 0.0 { highest * 1.1 } else { 1.0 };
    // Counts are whole: an even top keeps the middle label a whole number too (0, 1, 2 req).
    let top = if metric == Metric::Cost { top } else { (top / 2.0).ceil() * 2.0 };
    let last_index = daily.len().saturating_sub(1);
    let day_label = |index: usize| daily.get(index).map_or(String::new(), |d| d.day.format("%b %d").to_string());

    let dataset =
        Dataset::default().graph_type(GraphType::Bar).marker(Marker::HalfBlock).style(theme.chart).data(&points);
    let chart = Chart::new(vec![dataset])
        .block(block)
        .x_axis(Axis::default().style(theme.muted).bounds([-0.5, last_index as f64 + 0.5]).labels([
            day_label(0),
            day_label(last_index / 2),
            day_label(last_index),
        ]))
        .y_axis(Axis::default().style(theme.muted).bounds([0.0, top]).labels([
            metric.axis_label(0.0),
            metric.axis_label(top / 2.0),
            metric.axis_label(top),
        ]));
    frame.render_widget(chart, area);
}

/// The range's totals, under the chart, in parts: requests, tokens, cost, average response time.
pub fn totals(stats: &UsageSeries) -> [String; 4] {
    let average = match stats.avg_response_ms {
        Some(ms) => format!("avg {ms:.0} ms"),
        None if stats.total_requests > 0 => "no response times".into(),
        None => "no requests".into(),
    };
    [
        match stats.total_requests {
            1 => "1 request".into(),
            count => format!("{} requests", compact_count(count as f64)),
        },
        format!("{} tokens", compact_count(stats.total_tokens as f64)),
        stats.total_cost.to_string(),
        average,
    ]
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn average_of(day: DailyUsage) -> String {
        let [.., average] = totals(&UsageSeries::summarise(1, day.day, day.day, &[day]));
        average
    }

    #[test]
    fn the_average_says_why_it_is_missing() {
        let day = DailyUsage::empty(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        assert_eq!(average_of(day), "no requests");
        assert_eq!(average_of(DailyUsage { requests: 2, ..day }), "no response times");
        assert_eq!(
            average_of(DailyUsage { requests: 3, response_ms_sum: 500, timed_requests: 2, ..day }),
            "avg 250 ms"
        );
    }
}
