//! Keybindings as data: one table of (context, action, keys, description) feeds the dispatcher,
//! the status-bar hints and the `?` help, so the three can never disagree.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::screens::Tab;

/// Where a binding applies. `Global` bindings apply everywhere, under every other context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Global,
    /// Every screen (not dialogs or text boxes): switching screens.
    Screens,
    List,
    Detail,
    Usage,
    Users,
    /// One user open from the users screen.
    User,
    Audit,
    Filter,
    Form,
    Confirm,
    Secret,
    Help,
    Report,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Screens => "Every screen",
            Context::List => "Key list",
            Context::Detail => "Key detail",
            Context::Usage => "Usage",
            Context::Users => "Users",
            Context::User => "User",
            Context::Audit => "Audit log",
            Context::Filter => "Filter box",
            Context::Form => "Dialog",
            Context::Confirm => "Confirmation",
            Context::Secret => "Key shown once",
            Context::Help => "Help",
            Context::Report => "Sweep report",
        }
    }

    /// Whether this is a screen's own context, under which the `Screens` bindings apply.
    fn is_screen(self) -> bool {
        matches!(
            self,
            Context::List | Context::Detail | Context::Usage | Context::Users | Context::User | Context::Audit
        )
    }

    /// The contexts a key press in `self` is looked up in, most specific first.
    fn lookup_order(self) -> impl Iterator<Item = Context> {
        let global = (self != Context::Global).then_some(Context::Global);
        [Some(self), self.is_screen().then_some(Context::Screens), global].into_iter().flatten()
    }

    /// Whether one key may not mean two things in these two contexts.
    fn overlaps(self, other: Context) -> bool {
        self.lookup_order().any(|context| context == other) || other.lookup_order().any(|context| context == self)
    }
}

/// Everything a key can ask for. The snake_case name is what the config file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ForceQuit,
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    Open,
    Back,
    NextScope,
    NextNarrowing,
    Filter,
    Sort,
    ReverseSort,
    Refresh,
    ToggleAutoRefresh,
    CycleMetric,
    ShorterRange,
    LongerRange,
    TopUp,
    Create,
    Edit,
    ToggleActive,
    Purge,
    Reveal,
    Roll,
    Sweep,
    /// Enable the selected key, or every marked key.
    Enable,
    /// Mark or unmark the selected key for a bulk action.
    Mark,
    /// Mark every key the list's filter and scope match.
    MarkAll,
    ClearMarks,
    ApplyFilter,
    ClearFilter,
    Submit,
    Cancel,
    NextField,
    PreviousField,
    CycleChoice,
    PreviousChoice,
    Confirm,
    Copy,
    SweepReport,
    /// Disable every key of the open user at once.
    DisableAllKeys,
    /// Move the selection to the screen's other list.
    SwitchPane,
    /// Open one of the screens.
    Show(Tab),
}

impl Action {
    const ALL: [Action; 50] = [
        Action::ForceQuit,
        Action::Quit,
        Action::Help,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::First,
        Action::Last,
        Action::Open,
        Action::Back,
        Action::NextScope,
        Action::NextNarrowing,
        Action::Filter,
        Action::Sort,
        Action::ReverseSort,
        Action::Refresh,
        Action::ToggleAutoRefresh,
        Action::CycleMetric,
        Action::ShorterRange,
        Action::LongerRange,
        Action::TopUp,
        Action::Create,
        Action::Edit,
        Action::ToggleActive,
        Action::Purge,
        Action::Reveal,
        Action::Roll,
        Action::Sweep,
        Action::Enable,
        Action::Mark,
        Action::MarkAll,
        Action::ClearMarks,
        Action::ApplyFilter,
        Action::ClearFilter,
        Action::Submit,
        Action::Cancel,
        Action::NextField,
        Action::PreviousField,
        Action::CycleChoice,
        Action::PreviousChoice,
        Action::Confirm,
        Action::Copy,
        Action::SweepReport,
        Action::DisableAllKeys,
        Action::SwitchPane,
        Action::Show(Tab::Keys),
        Action::Show(Tab::Usage),
        Action::Show(Tab::Users),
        Action::Show(Tab::Audit),
    ];

    /// The name used in the `[keybindings]` table of the config file.
    pub fn name(self) -> &'static str {
        match self {
            Action::ForceQuit => "force_quit",
            Action::Quit => "quit",
            Action::Help => "help",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::First => "first",
            Action::Last => "last",
            Action::Open => "open",
            Action::Back => "back",
            Action::NextScope => "next_scope",
            Action::NextNarrowing => "next_narrowing",
            Action::Filter => "filter",
            Action::Sort => "sort",
            Action::ReverseSort => "reverse_sort",
            Action::Refresh => "refresh",
            Action::ToggleAutoRefresh => "toggle_auto_refresh",
            Action::CycleMetric => "cycle_metric",
            Action::ShorterRange => "shorter_range",
            Action::LongerRange => "longer_range",
            Action::TopUp => "top_up",
            Action::Create => "create",
            Action::Edit => "edit",
            Action::ToggleActive => "toggle_active",
            Action::Purge => "purge",
            Action::Reveal => "reveal",
            Action::Roll => "roll",
            Action::Sweep => "sweep",
            Action::Enable => "enable",
            Action::Mark => "mark",
            Action::MarkAll => "mark_all",
            Action::ClearMarks => "clear_marks",
            Action::ApplyFilter => "apply_filter",
            Action::ClearFilter => "clear_filter",
            Action::Submit => "submit",
            Action::Cancel => "cancel",
            Action::NextField => "next_field",
            Action::PreviousField => "previous_field",
            Action::CycleChoice => "cycle_choice",
            Action::PreviousChoice => "previous_choice",
            Action::Confirm => "confirm",
            Action::Copy => "copy",
            Action::SweepReport => "sweep_report",
            Action::DisableAllKeys => "disable_all_keys",
            Action::SwitchPane => "switch_pane",
            Action::Show(Tab::Keys) => "keys_screen",
            Action::Show(Tab::Usage) => "usage_screen",
            Action::Show(Tab::Users) => "users_screen",
            Action::Show(Tab::Audit) => "audit_screen",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.name() == name)
    }

    /// Actions that write to the database; `--read-only` removes them from the keymap.
    /// Revealing counts: it appends an audit row.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Action::TopUp
                | Action::Create
                | Action::Edit
                | Action::ToggleActive
                | Action::Purge
                | Action::Reveal
                | Action::Roll
                | Action::Sweep
                | Action::DisableAllKeys
                | Action::Enable
        )
    }
}

/// One key press as the keymap sees it. Shift is folded into the character (`G`, `?`), so
/// only Ctrl and Alt remain as modifiers of characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl KeyChord {
    pub fn from_event(event: &KeyEvent) -> KeyChord {
        let mut modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(event.code, KeyCode::Char(_) | KeyCode::BackTab) {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        let code = match event.code {
            // Terminals report Ctrl-R as `r` or `R` with CONTROL; compare in lowercase.
            KeyCode::Char(ch) if modifiers.contains(KeyModifiers::CONTROL) => KeyCode::Char(ch.to_ascii_lowercase()),
            other => other,
        };
        KeyChord { code, modifiers }
    }

    /// Parses `t`, `G`, `?`, `ctrl-r`, `alt-x`, `enter`, `esc`, `tab`, `backtab`, `space`,
    /// `pgup`, `pgdn`, `up`, `down`, `left`, `right`, `home`, `end`, `f1`…`f12`.
    pub fn parse(text: &str) -> Result<KeyChord, String> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(tail) = lower.strip_prefix("ctrl-").filter(|t| !t.is_empty()) {
                modifiers |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - tail.len()..];
            } else if let Some(tail) = lower.strip_prefix("alt-").filter(|t| !t.is_empty()) {
                modifiers |= KeyModifiers::ALT;
                rest = &rest[rest.len() - tail.len()..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(ch), None) if !ch.is_control() && ch != ' ' => {
                KeyCode::Char(if modifiers.is_empty() { ch } else { ch.to_ascii_lowercase() })
            }
            _ => named_key(&rest.to_ascii_lowercase()).ok_or_else(|| {
                format!(
                    "{text:?} is not a key; use a single character (t, G, ?), a name (enter, esc, tab, backtab, \
                     space, up, down, left, right, pgup, pgdn, home, end, f1…f12), optionally after ctrl- or alt-"
                )
            })?,
        };
        Ok(KeyChord { code, modifiers })
    }
}

fn named_key(name: &str) -> Option<KeyCode> {
    Some(match name {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "backtab" | "shift-tab" => KeyCode::BackTab,
        "space" => KeyCode::Char(' '),
        "backspace" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pgup" | "pageup" => KeyCode::PageUp,
        "pgdn" | "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        _ => {
            let number: u8 = name.strip_prefix('f')?.parse().ok()?;
            return (1..=12).contains(&number).then_some(KeyCode::F(number));
        }
    })
}

impl fmt::Display for KeyChord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(ch) => write!(f, "{ch}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::F(number) => write!(f, "F{number}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A default binding as written in the table below.
struct DefaultBinding {
    context: Context,
    action: Action,
    keys: &'static [&'static str],
    description: &'static str,
    /// A short label for the status bar; `None` keeps the binding to the help.
    hint: Option<&'static str>,
}

const fn bind(
    context: Context,
    action: Action,
    keys: &'static [&'static str],
    description: &'static str,
    hint: Option<&'static str>,
) -> DefaultBinding {
    DefaultBinding { context, action, keys, description, hint }
}

use Action as A;
use Context as C;

/// The default keymap, in the order the help lists it.
const DEFAULTS: &[DefaultBinding] = &[
    bind(C::Global, A::ForceQuit, &["ctrl-c"], "Quit at once", None),
    bind(C::Screens, A::Show(Tab::Keys), &["1"], "Show the keys screen", None),
    bind(C::Screens, A::Show(Tab::Usage), &["2"], "Show the fleet's usage", None),
    bind(C::Screens, A::Show(Tab::Users), &["3"], "Show the users", None),
    bind(C::Screens, A::Show(Tab::Audit), &["4"], "Show the audit log", None),
    bind(C::List, A::Open, &["enter"], "Open the selected key", Some("open")),
    bind(C::List, A::Up, &["up", "k"], "Previous key", None),
    bind(C::List, A::Down, &["down", "j"], "Next key", None),
    bind(C::List, A::PageUp, &["pgup"], "Page up", None),
    bind(C::List, A::PageDown, &["pgdn"], "Page down", None),
    bind(C::List, A::First, &["g", "home"], "First key", None),
    bind(C::List, A::Last, &["G", "end"], "Last key", None),
    bind(C::List, A::Filter, &["/"], "Filter by name, owner, key hint or id prefix", Some("filter")),
    bind(C::List, A::NextScope, &["tab"], "Cycle scope: all, user keys, standalone", Some("scope")),
    bind(C::List, A::NextNarrowing, &["v"], "Narrow to active, expiring in 7 days, low balance", Some("narrow")),
    bind(C::List, A::Sort, &["o"], "Cycle the sort column (balance, 30-day spend too)", None),
    bind(C::List, A::ReverseSort, &["O"], "Reverse the sort order", None),
    bind(C::List, A::TopUp, &["t"], "Top up or deduct (prepaid keys)", Some("top up")),
    bind(C::List, A::Create, &["n"], "Create a key", Some("new")),
    bind(C::List, A::Edit, &["e"], "Edit the selected key", None),
    bind(C::List, A::ToggleActive, &["d"], "Disable or enable the key; disable the marked", None),
    bind(C::List, A::Enable, &["E"], "Enable the selected key, or the marked keys", None),
    bind(C::List, A::Purge, &["D"], "Purge the key (or the marked keys) for good", None),
    bind(C::List, A::Mark, &["space"], "Mark the key for t, e, d, E or D on all marked", None),
    bind(C::List, A::MarkAll, &["*"], "Mark every key the filter and scope match", None),
    bind(C::List, A::ClearMarks, &["esc"], "Clear the marks", None),
    bind(C::List, A::Reveal, &["R"], "Reveal the key's plaintext (audited)", None),
    bind(C::List, A::Roll, &["K"], "Roll: a new secret, the old one valid 24h more", None),
    bind(C::List, A::Sweep, &["S"], "Run the expiry sweep now (after a dry run)", None),
    bind(C::List, A::SweepReport, &["L"], "Show what the last sweep did", None),
    bind(C::List, A::Refresh, &["r"], "Refresh now", None),
    bind(C::List, A::ToggleAutoRefresh, &["a"], "Turn auto-refresh on or off", None),
    bind(C::List, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::List, A::Quit, &["q"], "Quit", Some("quit")),
    bind(C::Detail, A::Back, &["esc", "q"], "Back to the list", Some("back")),
    bind(C::Detail, A::Up, &["up", "k"], "Previous key", None),
    bind(C::Detail, A::Down, &["down", "j"], "Next key", None),
    bind(C::Detail, A::CycleMetric, &["m"], "Chart: requests, tokens or cost", Some("metric")),
    bind(C::Detail, A::ShorterRange, &["["], "Chart: shorter range (90, 30, 7 days)", None),
    bind(C::Detail, A::LongerRange, &["]"], "Chart: longer range (7, 30, 90 days)", Some("range")),
    bind(C::Detail, A::TopUp, &["t"], "Top up or deduct (prepaid keys)", Some("top up")),
    bind(C::Detail, A::Edit, &["e"], "Edit this key", Some("edit")),
    bind(C::Detail, A::ToggleActive, &["d"], "Disable or enable this key", None),
    bind(C::Detail, A::Purge, &["D"], "Purge this key for good", None),
    bind(C::Detail, A::Reveal, &["R"], "Reveal the key's plaintext (audited)", None),
    bind(C::Detail, A::Roll, &["K"], "Roll: a new secret, the old one valid 24h more", None),
    bind(C::Detail, A::Refresh, &["r"], "Refresh now", None),
    bind(C::Detail, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::Usage, A::Open, &["enter"], "Open the selected key", Some("open")),
    bind(C::Usage, A::Up, &["up", "k"], "Previous key", None),
    bind(C::Usage, A::Down, &["down", "j"], "Next key", None),
    bind(
        C::Usage,
        A::SwitchPane,
        &["tab"],
        "Move between the top keys and the keys needing attention",
        Some("attention"),
    ),
    bind(C::Usage, A::CycleMetric, &["m"], "Chart: requests, tokens or cost", Some("metric")),
    bind(C::Usage, A::ShorterRange, &["["], "Shorter range (90, 30, 7 days)", None),
    bind(C::Usage, A::LongerRange, &["]"], "Longer range (7, 30, 90 days)", Some("range")),
    bind(C::Usage, A::Refresh, &["r"], "Refresh now", None),
    bind(C::Usage, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::Usage, A::Quit, &["q"], "Quit", Some("quit")),
    bind(C::Users, A::Open, &["enter"], "Open the selected user: their chart and keys", Some("open")),
    bind(C::Users, A::Up, &["up", "k"], "Previous user", None),
    bind(C::Users, A::Down, &["down", "j"], "Next user (more load as you go)", None),
    bind(C::Users, A::PageUp, &["pgup"], "Page up", None),
    bind(C::Users, A::PageDown, &["pgdn"], "Page down", None),
    bind(C::Users, A::First, &["g", "home"], "First user", None),
    bind(C::Users, A::Filter, &["/"], "Filter users by name", Some("filter")),
    bind(C::Users, A::Create, &["n"], "Add a user", Some("add user")),
    bind(C::Users, A::ToggleActive, &["d"], "Disable or enable the selected user (their keys with them)", None),
    bind(C::Users, A::ShorterRange, &["["], "Spend over a shorter range (90, 30, 7 days)", None),
    bind(C::Users, A::LongerRange, &["]"], "Spend over a longer range (7, 30, 90 days)", Some("range")),
    bind(C::Users, A::Refresh, &["r"], "Reload the users", None),
    bind(C::Users, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::Users, A::Quit, &["q"], "Quit", Some("quit")),
    bind(C::User, A::Back, &["esc", "q"], "Back to the users", Some("back")),
    bind(C::User, A::Open, &["enter"], "Open the selected key", Some("open key")),
    bind(C::User, A::Up, &["up", "k"], "Previous key", None),
    bind(C::User, A::Down, &["down", "j"], "Next key", None),
    bind(C::User, A::CycleMetric, &["m"], "Chart: requests, tokens or cost", Some("metric")),
    bind(C::User, A::ShorterRange, &["["], "Chart: shorter range (90, 30, 7 days)", None),
    bind(C::User, A::LongerRange, &["]"], "Chart: longer range (7, 30, 90 days)", Some("range")),
    bind(C::User, A::ToggleActive, &["d"], "Disable or enable this user (their keys with them)", None),
    bind(C::User, A::DisableAllKeys, &["X"], "Disable all of this user's keys at once", Some("disable keys")),
    bind(C::User, A::Refresh, &["r"], "Refresh now", None),
    bind(C::User, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::Audit, A::Open, &["enter"], "Open the key of the selected row", Some("open key")),
    bind(C::Audit, A::Up, &["up", "k"], "Previous row", None),
    bind(C::Audit, A::Down, &["down", "j"], "Next row (older rows load as you go)", None),
    bind(C::Audit, A::PageUp, &["pgup"], "Page up", None),
    bind(C::Audit, A::PageDown, &["pgdn"], "Page down", None),
    bind(C::Audit, A::First, &["g", "home"], "Newest row", None),
    bind(
        C::Audit,
        A::Filter,
        &["/"],
        "Filter: actor:NAME action:ACTION key:NAME (a bare word is an actor)",
        Some("filter"),
    ),
    bind(C::Audit, A::Refresh, &["r"], "Reload the newest rows", None),
    bind(C::Audit, A::Help, &["?"], "Show this help", Some("help")),
    bind(C::Audit, A::Quit, &["q"], "Quit", Some("quit")),
    bind(C::Filter, A::ApplyFilter, &["enter"], "Keep the filter and select the first match", Some("keep")),
    bind(C::Filter, A::ClearFilter, &["esc"], "Clear the filter", Some("clear")),
    bind(C::Form, A::Submit, &["enter"], "Apply", Some("apply")),
    bind(C::Form, A::Cancel, &["esc"], "Cancel", Some("cancel")),
    bind(C::Form, A::NextField, &["tab", "down"], "Next field", Some("next field")),
    bind(C::Form, A::PreviousField, &["backtab", "up"], "Previous field", None),
    bind(C::Form, A::CycleChoice, &["space", "right"], "Change a choice field", Some("change choice")),
    bind(C::Form, A::PreviousChoice, &["left"], "Change a choice field back", None),
    bind(C::Confirm, A::Confirm, &["y"], "Yes, do it", Some("yes")),
    bind(C::Confirm, A::Cancel, &["n", "esc"], "No, cancel", Some("no")),
    bind(C::Secret, A::Copy, &["c"], "Copy to the clipboard (OSC 52, works over SSH)", Some("copy")),
    bind(C::Secret, A::Back, &["esc", "enter"], "Close; the key will not be shown again", Some("close")),
    bind(C::Help, A::Down, &["down", "j"], "Scroll down", Some("scroll")),
    bind(C::Help, A::Up, &["up", "k"], "Scroll up", None),
    bind(C::Help, A::PageDown, &["pgdn"], "Scroll a page down", None),
    bind(C::Help, A::PageUp, &["pgup"], "Scroll a page up", None),
    bind(C::Help, A::First, &["g", "home"], "Scroll to the top", None),
    bind(C::Help, A::Last, &["G", "end"], "Scroll to the bottom", None),
    bind(C::Help, A::Back, &["esc", "?", "q"], "Close the help", Some("close")),
    bind(C::Report, A::Back, &["esc", "enter", "q"], "Close the report", Some("close")),
];

/// One binding of the effective keymap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub context: Context,
    pub action: Action,
    pub keys: Vec<KeyChord>,
    pub description: &'static str,
    /// The status-bar label, for the few bindings worth a place there.
    pub hint: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<Binding>,
    /// The bindings that write, left out under `--read-only`: pressing one says why nothing
    /// happens instead of doing nothing.
    withheld: Vec<Binding>,
}

impl Keymap {
    /// The defaults with the user's overrides (action name → key) applied. With `read_only`, the
    /// actions that write are left out, so they are neither dispatched nor advertised.
    pub fn new(overrides: &BTreeMap<String, String>, read_only: bool) -> Result<Keymap, String> {
        let mut bindings: Vec<Binding> = DEFAULTS
            .iter()
            .map(|binding| Binding {
                context: binding.context,
                action: binding.action,
                keys: binding.keys.iter().map(|key| KeyChord::parse(key).expect("default keys parse")).collect(),
                description: binding.description,
                hint: binding.hint,
            })
            .collect();
        for (name, key) in overrides {
            let action = Action::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("keybindings: unknown action {name:?}; known actions: {}", names.join(", "))
            })?;
            let chord = KeyChord::parse(key).map_err(|error| format!("keybindings: {name} = {error}"))?;
            for binding in bindings.iter_mut().filter(|binding| binding.action == action) {
                binding.keys = vec![chord];
            }
        }
        let keymap = Keymap { bindings, withheld: Vec::new() };
        keymap.check_conflicts()?;
        let (withheld, bindings) =
            keymap.bindings.into_iter().partition(|binding| read_only && binding.action.writes());
        Ok(Keymap { bindings, withheld })
    }

    fn check_conflicts(&self) -> Result<(), String> {
        for (index, first) in self.bindings.iter().enumerate() {
            for second in &self.bindings[index + 1..] {
                let overlap = first.context.overlaps(second.context);
                if let Some(key) = first.keys.iter().find(|key| overlap && second.keys.contains(key)) {
                    return Err(format!(
                        "keybindings: {key} is bound to both {} and {} in the {} context; give one of them \
                         another key",
                        first.action.name(),
                        second.action.name(),
                        second.context.title().to_lowercase()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The action a key press asks for in `context` (falling back to the global bindings).
    pub fn action(&self, context: Context, chord: KeyChord) -> Option<Action> {
        context.lookup_order().find_map(|ctx| {
            self.bindings.iter().find(|b| b.context == ctx && b.keys.contains(&chord)).map(|b| b.action)
        })
    }

    /// The binding of a key press that `--read-only` left out, if it is one.
    pub fn withheld(&self, context: Context, chord: KeyChord) -> Option<&Binding> {
        self.withheld.iter().find(|b| b.context == context && b.keys.contains(&chord))
    }

    /// Every binding of `context`, then those of the contexts under it: the help's content.
    pub fn bindings(&self, context: Context) -> impl Iterator<Item = &Binding> {
        context.lookup_order().flat_map(move |ctx| self.bindings.iter().filter(move |b| b.context == ctx))
    }

    /// The few bindings of `context` worth showing in the status bar.
    pub fn hints(&self, context: Context) -> impl Iterator<Item = &Binding> {
        self.bindings.iter().filter(move |b| b.context == context && b.hint.is_some())
    }

    /// The first key of `action` in `context`, for messages such as "press t to top up".
    pub fn key_for(&self, context: Context, action: Action) -> Option<KeyChord> {
        self.bindings(context).find(|b| b.action == action).and_then(|b| b.keys.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyChord {
        KeyChord::from_event(&KeyEvent::new(code, modifiers))
    }

    #[test]
    fn the_defaults_parse_without_conflicts_and_every_action_has_a_name() {
        let keymap = Keymap::new(&BTreeMap::new(), false).unwrap();
        assert_eq!(keymap.action(Context::List, KeyChord::parse("t").unwrap()), Some(Action::TopUp));
        for action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
        }
    }

    #[test]
    fn parses_and_displays_keys() {
        assert_eq!(KeyChord::parse("ctrl-R").unwrap(), key(KeyCode::Char('r'), KeyModifiers::CONTROL));
        assert_eq!(KeyChord::parse("G").unwrap(), key(KeyCode::Char('G'), KeyModifiers::SHIFT));
        assert_eq!(KeyChord::parse("pgdn").unwrap().to_string(), "PgDn");
        assert_eq!(KeyChord::parse("f5").unwrap().code, KeyCode::F(5));
        assert_eq!(KeyChord::parse("ctrl-c").unwrap().to_string(), "Ctrl-c");
        assert!(KeyChord::parse("ctrl-").is_err());
        assert!(KeyChord::parse("hyper-x").is_err());
        assert!(KeyChord::parse("f13").is_err());
    }

    #[test]
    fn overrides_replace_keys_everywhere_the_action_appears() {
        let overrides = BTreeMap::from([("top_up".to_string(), "ctrl-t".to_string())]);
        let keymap = Keymap::new(&overrides, false).unwrap();
        let ctrl_t = KeyChord::parse("ctrl-t").unwrap();
        assert_eq!(keymap.action(Context::List, ctrl_t), Some(Action::TopUp));
        assert_eq!(keymap.action(Context::Detail, ctrl_t), Some(Action::TopUp));
        assert_eq!(keymap.action(Context::List, KeyChord::parse("t").unwrap()), None);
    }

    #[test]
    fn bad_overrides_are_clear_errors() {
        let unknown = BTreeMap::from([("topup".to_string(), "t".to_string())]);
        assert!(Keymap::new(&unknown, false).unwrap_err().contains("unknown action \"topup\""));
        let bad_key = BTreeMap::from([("top_up".to_string(), "hyper-t".to_string())]);
        assert!(Keymap::new(&bad_key, false).unwrap_err().contains("top_up"));
        let conflict = BTreeMap::from([("top_up".to_string(), "q".to_string())]);
        let error = Keymap::new(&conflict, false).unwrap_err();
        assert!(error.contains("q is bound to both"), "{error}");
    }

    /// The default keymap as the README's markdown table.
    fn markdown_table(keymap: &Keymap) -> String {
        let mut table = String::from("| where | keys | action (config name) | what it does |\n|---|---|---|---|\n");
        for binding in &keymap.bindings {
            let keys: Vec<String> = binding.keys.iter().map(|key| format!("`{key}`")).collect();
            table.push_str(&format!(
                "| {} | {} | `{}` | {} |\n",
                binding.context.title(),
                keys.join(" "),
                binding.action.name(),
                binding.description
            ));
        }
        table
    }

    /// The README's table of keys is this keymap's, so the two cannot drift apart.
    #[test]
    fn the_readme_lists_every_default_binding() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let table = markdown_table(&Keymap::new(&BTreeMap::new(), false).unwrap());
        assert!(readme.contains(&table), "README.md's table of keys is out of date; it should read:\n\n{table}");
    }

    #[test]
    fn read_only_leaves_out_every_action_that_writes() {
        let keymap = Keymap::new(&BTreeMap::new(), true).unwrap();
        for context in [Context::List, Context::Detail] {
            assert!(keymap.bindings(context).all(|b| !b.action.writes()));
        }
        assert_eq!(keymap.action(Context::List, KeyChord::parse("t").unwrap()), None);
        let withheld = keymap.withheld(Context::List, KeyChord::parse("S").unwrap()).unwrap();
        assert_eq!(withheld.action, Action::Sweep);
    }
}
