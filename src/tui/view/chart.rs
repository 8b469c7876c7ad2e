//! The daily usage chart: one bar per UTC day, with labelled axes and units.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};

use crate::domain::DailyUsage;
use crate::service::KeyStats;
use crate::tui::state::{Metric, State};

use super::format::compact_count;

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

    fn axis_label(self, value: f64) -> String {
        match self {
            Metric::Cost if value < 10.0 => format!("${value:.2}"),
            Metric::Cost => format!("${}", compact_count(value)),
            Metric::Requests | Metric::Tokens => compact_count(value),
        }
    }
}

pub fn render(frame: &mut Frame, state: &State, stats: &KeyStats, area: Rect) {
    let theme = &state.session.theme;
    let metric = state.detail.metric;
    let values: Vec<f64> = stats.daily.iter().map(|day| metric.value(day)).collect();
    // Days without usage get no bar at all rather than a sliver on the axis.
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, value)| **value > 0.0)
        .map(|(index, value)| (index as f64, *value))
        .collect();
    let highest = points.iter().map(|&(_, value)| value).fold(0.0, f64::max);
    // Headroom above the tallest bar; an empty range still gets a readable axis.
    let top = if highest > 0.0 { highest * 1.1 } else { 1.0 };
    let last_index = values.len().saturating_sub(1);
    let day_label = |index: usize| stats.daily.get(index).map_or(String::new(), |d| d.day.format("%m-%d").to_string());

    let title = Line::styled(format!(" {} · last {} days, UTC ", metric.title(), stats.days), theme.title);
    let dataset =
        Dataset::default().graph_type(GraphType::Bar).marker(Marker::HalfBlock).style(theme.chart).data(&points);
    let chart = Chart::new(vec![dataset])
        .block(Block::bordered().border_style(theme.border).title(title))
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

/// The range's totals, under the chart.
pub fn totals(stats: &KeyStats) -> String {
    let average = stats.avg_response_ms.map_or("no requests".into(), |ms| format!("avg {ms:.0} ms"));
    format!(
        "{} days: {} requests · {} tokens · {} · {average}",
        stats.days,
        compact_count(stats.total_requests as f64),
        compact_count(stats.total_tokens as f64),
        stats.total_cost,
    )
}
