//! The dialogs' forms: fields, their inline validation, and what a valid form turns into (a
//! top-up, a new key's spec, a patch). Parsing is the domain's; this module only wires it to
//! fields, so the dialog and the CLI accept exactly the same input.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use tui_input::Input;

use crate::domain::{
    ApiKey, KeyPatch, Money, MoneyPlan, Patch, Period, PlanInput, RefillMode,
    duration::parse_duration,
    text::sanitize,
    validate::{self, MAX_KEY_NAME_CHARS},
};
use crate::service::{MarkedKey, NewKeySpec, keys_word};
use crate::tui::view::format::owed_or_left;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    Amount,
    Note,
    Owner,
    UserName,
    Name,
    Standalone,
    Balance,
    Credit,
    RateLimit,
    Concurrency,
    Expires,
    Providers,
    ApiFormats,
    Models,
    AutoDelete,
    Budget,
    BudgetPeriod,
    Refill,
    RefillPeriod,
    RefillMode,
    LowBalance,
}

impl FieldId {
    pub fn label(self) -> &'static str {
        match self {
            FieldId::Amount => "Amount (USD)",
            FieldId::Note => "Note",
            FieldId::Owner => "Owner",
            FieldId::UserName => "User name",
            FieldId::Name => "Name",
            FieldId::Standalone => "Prepaid",
            FieldId::Balance => "Balance (USD)",
            FieldId::Credit => "Credited (USD)",
            FieldId::RateLimit => "Rate limit /min",
            FieldId::Concurrency => "Concurrency",
            FieldId::Expires => "Expires",
            FieldId::Providers => "Providers",
            FieldId::ApiFormats => "API formats",
            FieldId::Models => "Models",
            FieldId::AutoDelete => "When expired",
            FieldId::Budget => "Budget (USD)",
            FieldId::BudgetPeriod => "Budget period",
            FieldId::Refill => "Refill (USD)",
            FieldId::RefillPeriod => "Refill period",
            FieldId::RefillMode => "Refill mode",
            FieldId::LowBalance => "Low balance",
        }
    }

    /// What the field accepts, shown under it while it has focus.
    pub fn help(self) -> &'static str {
        match self {
            FieldId::Amount => "e.g. 7.50; a negative amount deducts",
            FieldId::Note => "optional, kept in the ledger",
            FieldId::Owner => "the user who owns the key; a new name adds the user (after asking)",
            FieldId::UserName => "a new user, who can then own keys",
            FieldId::Name => "blank gives \"API Key <date>\"",
            FieldId::Standalone => "prepaid keys have their own balance",
            FieldId::Balance => "initial credit; blank = unlimited",
            FieldId::Credit => "the total credited so far; none = unlimited",
            FieldId::RateLimit | FieldId::Concurrency => "a whole number, or none for unlimited",
            FieldId::Expires => "never, a duration from now (30d, 12h, 2w) or a UTC date (2026-12-31 18:00)",
            FieldId::Providers | FieldId::ApiFormats | FieldId::Models => "comma-separated; blank = all",
            FieldId::AutoDelete => "delete or disable the key once expired",
            FieldId::Budget => "spend per period before verify refuses; blank or none = no budget",
            FieldId::BudgetPeriod | FieldId::RefillPeriod => "calendar periods in UTC; weeks start Monday",
            FieldId::Refill => "credited by the sweep each period; blank or none = no refill",
            FieldId::RefillMode => "add the amount, or top the remaining balance up to it",
            FieldId::LowBalance => "alert under this balance (USD); none = no line, blank = the config's default",
        }
    }

    fn choices(self) -> &'static [&'static str] {
        match self {
            FieldId::Standalone => &["no", "yes"],
            FieldId::AutoDelete => &["follow the global policy", "delete", "disable"],
            FieldId::BudgetPeriod | FieldId::RefillPeriod => &PERIOD_CHOICES,
            FieldId::RefillMode => &MODE_CHOICES,
            _ => &[],
        }
    }
}

const PERIOD_CHOICES: [&str; 3] = ["month", "week", "day"];
const MODE_CHOICES: [&str; 2] = ["add", "reset"];

#[derive(Debug, Clone)]
pub enum FieldValue {
    Text(Input),
    Choice(usize),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub id: FieldId,
    pub value: FieldValue,
    /// The value the form opened with, to tell edited fields from untouched ones.
    initial: String,
}

impl Field {
    fn text(id: FieldId, value: &str) -> Field {
        Field { id, value: FieldValue::Text(Input::new(value.to_string())), initial: value.to_string() }
    }

    fn choice(id: FieldId, index: usize) -> Field {
        Field { id, value: FieldValue::Choice(index), initial: id.choices()[index].to_string() }
    }

    /// The field's value as text (a choice as its label).
    pub fn shown(&self) -> &str {
        match &self.value {
            FieldValue::Text(input) => input.value(),
            FieldValue::Choice(index) => self.id.choices()[*index],
        }
    }

    /// Whether the admin changed the field since the form opened.
    pub fn edited(&self) -> bool {
        self.shown() != self.initial
    }
}

/// What a form is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    /// The key as it was when the dialog opened (for the preview), and the idempotency key of
    /// this dialog's top-up.
    TopUp(Box<ApiKey>, String),
    Create,
    Edit(Box<ApiKey>),
    AddUser,
    /// The same top-up on every marked key, and the idempotency key of this dialog's top-ups.
    BulkTopUp(Vec<MarkedKey>, String),
    /// The fields changed here, on every marked key; the fields start from the selected key.
    BulkEdit(Box<ApiKey>, Vec<MarkedKey>),
}

#[derive(Debug, Clone)]
pub struct Form {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Submitted and waiting for the service; keys other than Esc are ignored meanwhile.
    pub submitting: bool,
    /// The admin confirmed an expiry in the past; the form submits without asking again.
    pub past_expiry_accepted: bool,
}

impl Form {
    pub fn top_up(key: &ApiKey, idempotency_key: String) -> Form {
        Form::with_fields(
            FormKind::TopUp(Box::new(key.clone()), idempotency_key),
            vec![Field::text(FieldId::Amount, ""), Field::text(FieldId::Note, "")],
        )
    }

    pub fn create(owner: &str) -> Form {
        let spec = NewKeySpec::new(owner);
        Form::with_fields(
            FormKind::Create,
            vec![
                Field::text(FieldId::Owner, owner),
                Field::text(FieldId::Name, ""),
                Field::choice(FieldId::Standalone, 0),
                Field::text(FieldId::Balance, ""),
                Field::text(FieldId::RateLimit, &limit_text(spec.rate_limit)),
                Field::text(FieldId::Concurrency, &limit_text(spec.concurrent_limit)),
                Field::text(FieldId::Expires, "never"),
                Field::text(FieldId::Providers, ""),
                Field::text(FieldId::ApiFormats, ""),
                Field::text(FieldId::Models, ""),
                Field::choice(FieldId::AutoDelete, 0),
            ]
            .into_iter()
            .chain(money_fields(&MoneyPlan::default()))
            .collect(),
        )
    }

    pub fn add_user() -> Form {
        Form::with_fields(FormKind::AddUser, vec![Field::text(FieldId::UserName, "")])
    }

    pub fn edit(key: &ApiKey) -> Form {
        let list = |items: &Option<Vec<String>>| items.as_ref().map(|l| sanitize(&l.join(", ")).into_owned());
        let auto_delete = match key.auto_delete_on_expiry {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        let mut fields = vec![Field::text(FieldId::Name, &sanitize(&key.name))];
        if key.is_standalone {
            fields.push(Field::text(FieldId::Credit, &key.credited.map_or("none".into(), plain_amount)));
        }
        fields.extend([
            Field::text(FieldId::RateLimit, &limit_text(key.rate_limit)),
            Field::text(FieldId::Concurrency, &limit_text(key.concurrent_limit)),
            Field::text(FieldId::Expires, &key.expires_at.map_or("never".into(), format_expiry)),
            Field::text(FieldId::Providers, &list(&key.allowed_providers).unwrap_or_default()),
            Field::text(FieldId::ApiFormats, &list(&key.allowed_api_formats).unwrap_or_default()),
            Field::text(FieldId::Models, &list(&key.allowed_models).unwrap_or_default()),
            Field::choice(FieldId::AutoDelete, auto_delete),
        ]);
        fields.extend(money_fields(&key.money));
        Form::with_fields(FormKind::Edit(Box::new(key.clone())), fields)
    }

    pub fn bulk_top_up(keys: Vec<MarkedKey>, idempotency_key: String) -> Form {
        Form::with_fields(
            FormKind::BulkTopUp(keys, idempotency_key),
            vec![Field::text(FieldId::Amount, ""), Field::text(FieldId::Note, "")],
        )
    }

    /// An edit of many keys: the name and credit of each stay its own.
    pub fn bulk_edit(template: &ApiKey, keys: Vec<MarkedKey>) -> Form {
        let mut form = Form::edit(template);
        form.fields.retain(|field| !matches!(field.id, FieldId::Name | FieldId::Credit));
        form.kind = FormKind::BulkEdit(Box::new(template.clone()), keys);
        form
    }

    /// The key whose fields an edit form started from.
    fn edited_key(&self) -> Option<&ApiKey> {
        match &self.kind {
            FormKind::Edit(key) | FormKind::BulkEdit(key, _) => Some(key),
            _ => None,
        }
    }

    /// The marked keys a bulk form applies to.
    pub fn bulk_keys(&self) -> Option<&[MarkedKey]> {
        match &self.kind {
            FormKind::BulkTopUp(keys, _) | FormKind::BulkEdit(_, keys) => Some(keys),
            _ => None,
        }
    }

    fn with_fields(kind: FormKind, fields: Vec<Field>) -> Form {
        Form { kind, fields, focus: 0, submitting: false, past_expiry_accepted: false }
    }

    pub fn title(&self) -> String {
        match &self.kind {
            FormKind::TopUp(key, _) => format!("Top up {}", sanitize(&key.name)),
            FormKind::Create => "Create a key".into(),
            FormKind::Edit(key) => format!("Edit {}", sanitize(&key.name)),
            FormKind::AddUser => "Add a user".into(),
            FormKind::BulkTopUp(keys, _) => format!("Top up {} marked {}", keys.len(), keys_word(keys.len())),
            FormKind::BulkEdit(_, keys) => format!("Edit {} marked {}", keys.len(), keys_word(keys.len())),
        }
    }

    /// Whether a field takes part: the balance only on a prepaid key being created, the refill
    /// only on a prepaid key.
    pub fn is_active(&self, field: &Field) -> bool {
        let prepaid = match self.edited_key() {
            Some(key) => key.is_standalone,
            None => self.text(FieldId::Standalone) == "yes",
        };
        match field.id {
            FieldId::Balance => prepaid,
            FieldId::Refill | FieldId::RefillPeriod | FieldId::RefillMode | FieldId::LowBalance => prepaid,
            _ => true,
        }
    }

    pub fn focused_mut(&mut self) -> &mut Field {
        &mut self.fields[self.focus]
    }

    /// Moves the focus by `step` fields, skipping inactive ones.
    pub fn move_focus(&mut self, step: isize) {
        let count = self.fields.len() as isize;
        let mut index = self.focus as isize;
        for _ in 0..count {
            index = (index + step).rem_euclid(count);
            if self.is_active(&self.fields[index as usize]) {
                break;
            }
        }
        self.focus = index as usize;
    }

    /// Steps a choice field by `step` options, round; false for a text field.
    pub fn cycle_choice(&mut self, step: isize) -> bool {
        let field = self.focused_mut();
        let options = field.id.choices().len() as isize;
        match &mut field.value {
            FieldValue::Choice(index) => {
                *index = (*index as isize + step).rem_euclid(options) as usize;
                true
            }
            FieldValue::Text(_) => false,
        }
    }

    fn text(&self, id: FieldId) -> &str {
        self.fields.iter().find(|f| f.id == id).map_or("", Field::shown)
    }

    fn field(&self, id: FieldId) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// What is wrong with a field as typed, if anything: shown inline as the admin types.
    pub fn error(&self, field: &Field, now: DateTime<Utc>) -> Option<String> {
        let text = field.shown();
        let outcome = match field.id {
            FieldId::Amount => parse_amount(text).map(drop),
            FieldId::Note => validate::note(Some(text)).map(drop).map_err(|e| e.to_string()),
            FieldId::Owner => {
                validate::name("owner", text, validate::MAX_USER_NAME_CHARS).map(drop).map_err(|e| e.to_string())
            }
            FieldId::UserName => self.user_name().map(drop),
            FieldId::Name => parse_name(text, matches!(self.kind, FormKind::Create)).map(drop),
            FieldId::Balance | FieldId::Credit => parse_credit(field.id, text).map(drop),
            FieldId::RateLimit | FieldId::Concurrency => parse_limit(field.id, text).map(drop),
            FieldId::Expires => parse_expiry(text, now).map(drop),
            FieldId::Providers | FieldId::ApiFormats | FieldId::Models => parse_list(field.id, text).map(drop),
            FieldId::Budget | FieldId::Refill | FieldId::LowBalance => {
                let input = PlanInput::default().with(field.id, typed(field.id, text));
                input.parse(&MoneyPlan::default(), now).map(drop).map_err(|e| e.to_string())
            }
            FieldId::Standalone
            | FieldId::AutoDelete
            | FieldId::BudgetPeriod
            | FieldId::RefillPeriod
            | FieldId::RefillMode => Ok(()),
        };
        outcome.err()
    }

    /// A warning about a field that is valid but probably not meant: an expiry already past.
    pub fn warning(&self, field: &Field, now: DateTime<Utc>) -> Option<String> {
        (field.id == FieldId::Expires && self.past_expiry(now).is_some()).then(|| {
            "is in the past: the key will be expired at once (and deleted by the sweep if it deletes on expiry)".into()
        })
    }

    /// The expiry the form sets, when it is already past: a new key's, or an edited one.
    pub fn past_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let field = self.field(FieldId::Expires)?;
        if self.edited_key().is_some() && !field.edited() {
            return None; // an expired key being edited for another reason
        }
        parse_expiry(field.shown(), now).ok().flatten().filter(|at| *at <= now)
    }

    /// The first error of an active field, with the field's index.
    pub fn first_error(&self, now: DateTime<Utc>) -> Option<(usize, String)> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| self.is_active(f))
            .find_map(|(i, f)| Some((i, self.error(f, now)?)))
    }

    /// The amount and note of a top-up form.
    pub fn top_up_request(&self) -> Result<(Money, Option<String>), String> {
        let amount = parse_amount(self.text(FieldId::Amount))?;
        let note = validate::note(Some(self.text(FieldId::Note))).map_err(|e| e.to_string())?;
        Ok((amount, note))
    }

    /// The name of an add-user form.
    pub fn user_name(&self) -> Result<String, String> {
        validate::name("user name", self.text(FieldId::UserName), validate::MAX_USER_NAME_CHARS)
            .map_err(|e| e.to_string())
    }

    /// The spec of a create form.
    pub fn new_key_spec(&self, now: DateTime<Utc>) -> Result<NewKeySpec, String> {
        let standalone = self.text(FieldId::Standalone) == "yes";
        Ok(NewKeySpec {
            owner: self.text(FieldId::Owner).trim().to_string(),
            name: parse_name(self.text(FieldId::Name), true)?,
            standalone,
            balance: if standalone { parse_credit(FieldId::Balance, self.text(FieldId::Balance))? } else { None },
            rate_limit: parse_limit(FieldId::RateLimit, self.text(FieldId::RateLimit))?,
            concurrent_limit: parse_limit(FieldId::Concurrency, self.text(FieldId::Concurrency))?,
            expires_at: parse_expiry(self.text(FieldId::Expires), now)?,
            allowed_providers: parse_list(FieldId::Providers, self.text(FieldId::Providers))?.unwrap_or_default(),
            allowed_api_formats: parse_list(FieldId::ApiFormats, self.text(FieldId::ApiFormats))?.unwrap_or_default(),
            allowed_models: parse_list(FieldId::Models, self.text(FieldId::Models))?.unwrap_or_default(),
            auto_delete_on_expiry: self.auto_delete(),
            money: self
                .plan_input(false)
                .parse(&MoneyPlan::default(), now)
                .map_err(|e| e.to_string())?
                .applied_to(MoneyPlan::default()),
        })
    }

    /// The patch of an edit form: only the fields the admin changed.
    pub fn key_patch(&self, now: DateTime<Utc>) -> Result<KeyPatch, String> {
        let edited = |id| self.field(id).is_some_and(Field::edited);
        let mut patch = KeyPatch::default();
        if edited(FieldId::Name) {
            patch.name = parse_name(self.text(FieldId::Name), false)?;
        }
        if edited(FieldId::RateLimit) {
            patch.rate_limit = patch_of(parse_limit(FieldId::RateLimit, self.text(FieldId::RateLimit))?);
        }
        if edited(FieldId::Concurrency) {
            patch.concurrent_limit = patch_of(parse_limit(FieldId::Concurrency, self.text(FieldId::Concurrency))?);
        }
        if edited(FieldId::Expires) {
            patch.expires_at = patch_of(parse_expiry(self.text(FieldId::Expires), now)?);
        }
        if edited(FieldId::Providers) {
            patch.allowed_providers = patch_of(parse_list(FieldId::Providers, self.text(FieldId::Providers))?);
        }
        if edited(FieldId::ApiFormats) {
            patch.allowed_api_formats = patch_of(parse_list(FieldId::ApiFormats, self.text(FieldId::ApiFormats))?);
        }
        if edited(FieldId::Models) {
            patch.allowed_models = patch_of(parse_list(FieldId::Models, self.text(FieldId::Models))?);
        }
        if edited(FieldId::AutoDelete) {
            patch.auto_delete_on_expiry = patch_of(self.auto_delete());
        }
        if let Some(key) = self.edited_key() {
            patch.money = self.plan_input(true).parse(&key.money, now).map_err(|e| e.to_string())?;
        }
        Ok(patch)
    }

    /// The budget, refill and low-balance fields as the CLI's flags would give them: every
    /// active field, or (editing) only those the admin changed.
    fn plan_input(&self, only_edited: bool) -> PlanInput<'_> {
        let mut input = PlanInput::default();
        for field in &self.fields {
            if is_money_field(field.id) && self.is_active(field) && (!only_edited || field.edited()) {
                input = input.with(field.id, typed(field.id, field.shown()));
            }
        }
        input
    }

    /// The credited total an edit form sets, when the admin changed it: `Some(None)` makes the
    /// balance unlimited. `None` when there is nothing to write (retyping the same total).
    pub fn credit_change(&self) -> Result<Option<Option<Money>>, String> {
        let (FormKind::Edit(key), Some(field)) = (&self.kind, self.field(FieldId::Credit)) else { return Ok(None) };
        let credited = parse_credit(FieldId::Credit, field.shown())?;
        Ok((field.edited() && credited != key.credited).then_some(credited))
    }

    fn auto_delete(&self) -> Option<bool> {
        match self.text(FieldId::AutoDelete) {
            "delete" => Some(true),
            "disable" => Some(false),
            _ => None,
        }
    }
}

/// `remaining $10.00 → $17.50` for a top-up of `amount` on `key`, or why it cannot apply. A key
/// that owes money starts from its debt: `remaining -$1.489293 owed → $3.510707`.
pub fn top_up_preview(key: &ApiKey, amount: Money) -> Result<String, String> {
    let balance = key.balance().ok_or("this key is not prepaid")?;
    let net = balance.net().ok_or("this key's balance is unlimited")?;
    if amount.is_zero() {
        return Err("the amount must not be zero".into());
    }
    let remaining = net.max(Money::ZERO);
    if amount.is_negative() && amount.abs() > remaining {
        return Err(format!("cannot deduct more than the remaining {remaining}"));
    }
    let after = net.checked_add(amount).ok_or("the amount is too large")?;
    Ok(format!("remaining {} → {}", owed_or_left(net), owed_or_left(after)))
}

fn is_money_field(id: FieldId) -> bool {
    matches!(
        id,
        FieldId::Budget
            | FieldId::BudgetPeriod
            | FieldId::Refill
            | FieldId::RefillPeriod
            | FieldId::RefillMode
            | FieldId::LowBalance
    )
}

/// A money field's text as the CLI would take it: blank is `none` (no budget, no refill), or for
/// the low-balance line `default`.
fn typed(id: FieldId, text: &str) -> &str {
    match (id, text.trim().is_empty()) {
        (FieldId::LowBalance, true) => "default",
        (_, true) => "none",
        _ => text,
    }
}

impl<'a> PlanInput<'a> {
    /// This input with the value of one dialog field.
    fn with(mut self, id: FieldId, text: &'a str) -> Self {
        let slot = match id {
            FieldId::Budget => &mut self.budget,
            FieldId::BudgetPeriod => &mut self.budget_period,
            FieldId::Refill => &mut self.refill,
            FieldId::RefillPeriod => &mut self.refill_period,
            FieldId::RefillMode => &mut self.refill_mode,
            FieldId::LowBalance => &mut self.low_balance,
            _ => return self,
        };
        *slot = Some(text);
        self
    }
}

/// The budget, refill and low-balance fields of a dialog, filled from a key's plan.
fn money_fields(plan: &MoneyPlan) -> [Field; 6] {
    let amount = |amount: Option<Money>| amount.map_or_else(String::new, plain_amount);
    let period = |period: Option<Period>| {
        PERIOD_CHOICES.iter().position(|choice| Some(*choice) == period.map(Period::as_str)).unwrap_or(0)
    };
    let mode = plan.refill.map_or(0, |refill| usize::from(refill.mode == RefillMode::Reset));
    let low_balance = match plan.low_balance {
        None => String::new(),
        Some(line) if line.is_zero() => "none".into(),
        Some(line) => plain_amount(line),
    };
    [
        Field::text(FieldId::Budget, &amount(plan.budget.map(|budget| budget.amount))),
        Field::choice(FieldId::BudgetPeriod, period(plan.budget.map(|budget| budget.period))),
        Field::text(FieldId::Refill, &amount(plan.refill.map(|refill| refill.amount))),
        Field::choice(FieldId::RefillPeriod, period(plan.refill.map(|refill| refill.period))),
        Field::choice(FieldId::RefillMode, mode),
        Field::text(FieldId::LowBalance, &low_balance),
    ]
}

/// A field's new value as a patch: empty means clear (unrestricted, unlimited, never).
fn patch_of<T>(value: Option<T>) -> Patch<T> {
    value.map_or(Patch::Clear, Patch::Set)
}

fn limit_text(limit: Option<i64>) -> String {
    limit.map_or("none".into(), |value| value.to_string())
}

fn format_expiry(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

fn parse_amount(text: &str) -> Result<Money, String> {
    let amount = Money::parse(text).map_err(|e| format!("amount {e}"))?;
    if amount.is_zero() { Err("amount must not be zero; a negative amount deducts".into()) } else { Ok(amount) }
}

/// A credited total (the create form's initial balance, the edit form's credit): blank, `none`
/// or `unlimited` mean unlimited.
fn parse_credit(id: FieldId, text: &str) -> Result<Option<Money>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let field = if id == FieldId::Balance { "balance" } else { "credited total" };
    match Money::parse(text) {
        Ok(amount) if amount.is_negative() => Err(format!("{field} must not be negative")),
        Ok(amount) => Ok(Some(amount)),
        Err(e) => Err(format!("{field} {e}")),
    }
}

/// An amount as the admin would type it: `1234.50`, without symbol or separators.
fn plain_amount(amount: Money) -> String {
    amount.to_string().replace(['$', ','], "")
}

/// A key name; on create, blank means the default name.
fn parse_name(text: &str, blank_allowed: bool) -> Result<Option<String>, String> {
    if blank_allowed && text.trim().is_empty() {
        return Ok(None);
    }
    validate::name("name", text, MAX_KEY_NAME_CHARS).map(Some).map_err(|e| e.to_string())
}

fn parse_limit(id: FieldId, text: &str) -> Result<Option<i64>, String> {
    let field = if id == FieldId::RateLimit { "rate limit" } else { "concurrency" };
    validate::parse_limit(field, text).map_err(|e| e.to_string())
}

fn parse_list(id: FieldId, text: &str) -> Result<Option<Vec<String>>, String> {
    validate::allow_list(&id.label().to_lowercase(), &validate::split_list(text)).map_err(|e| e.to_string())
}

/// `never`/blank, a duration from now (`30d`), or a UTC date with an optional time.
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) && text.len() >= 10 && text.as_bytes()[4] == b'-' {
        let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN)))
            .map_err(|_| format!("expiry {text:?} is not a date such as 2026-12-31 or 2026-12-31 18:00 (UTC)"))?;
        return Ok(Some(at.and_utc()));
    }
    parse_duration(text).map(|duration| Some(now + duration)).map_err(|e| format!("expiry {text:?} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::{NOW, prepaid_key, user_key};

    fn type_into(form: &mut Form, id: FieldId, text: &str) {
        let field = form.fields.iter_mut().find(|f| f.id == id).unwrap();
        field.value = FieldValue::Text(Input::new(text.to_string()));
    }

    #[test]
    fn the_top_up_preview_shows_the_result_or_why_not() {
        let key = prepaid_key(); // $10.00 remaining
        assert_eq!(top_up_preview(&key, Money::parse("7.5").unwrap()), Ok("remaining $10.00 → $17.50".into()));
        assert_eq!(top_up_preview(&key, Money::parse("-2").unwrap()), Ok("remaining $10.00 → $8.00".into()));
        assert!(top_up_preview(&key, Money::parse("-11").unwrap()).unwrap_err().contains("remaining $10.00"));
        assert!(top_up_preview(&user_key(), Money::from_usd(1)).unwrap_err().contains("not prepaid"));
    }

    #[test]
    fn the_top_up_preview_of_an_overdrawn_key_pays_back_the_debt_first() {
        let mut key = prepaid_key();
        key.credited = Some(Money::from_usd(5));
        key.used = Money::from_micros(6_489_293);
        assert_eq!(top_up_preview(&key, Money::from_usd(5)), Ok("remaining -$1.489293 owed → $3.510707".into()));
        assert_eq!(top_up_preview(&key, Money::from_usd(1)), Ok("remaining -$1.489293 owed → -$0.489293 owed".into()));
        assert!(top_up_preview(&key, Money::from_usd(-1)).unwrap_err().contains("remaining $0.00"));
    }

    #[test]
    fn an_expiry_in_the_past_is_warned_about_when_set() {
        let mut form = Form::edit(&user_key());
        type_into(&mut form, FieldId::Expires, "2026-03-01");
        let expires = form.field(FieldId::Expires).unwrap();
        assert!(form.warning(expires, NOW).unwrap().starts_with("is in the past"));
        assert_eq!(form.first_error(NOW), None, "a warning, not an error");
        type_into(&mut form, FieldId::Expires, "2026-04-01");
        assert_eq!(form.past_expiry(NOW), None);
        let mut expired = user_key();
        expired.expires_at = Some(NOW - chrono::TimeDelta::days(1));
        assert_eq!(Form::edit(&expired).past_expiry(NOW), None, "editing another field of an expired key");
    }

    #[test]
    fn fields_explain_bad_input_inline() {
        let mut form = Form::top_up(&prepaid_key(), "tui-test-1".into());
        type_into(&mut form, FieldId::Amount, "1e3");
        let error = form.error(&form.fields[0], NOW).unwrap();
        assert!(error.starts_with("amount is not a plain decimal number"), "{error}");
        type_into(&mut form, FieldId::Amount, "0");
        assert!(form.first_error(NOW).unwrap().1.contains("zero"));
        type_into(&mut form, FieldId::Amount, "$7.50");
        assert_eq!(form.first_error(NOW), None);
        assert_eq!(form.top_up_request(), Ok((Money::from_micros(7_500_000), None)));
    }

    #[test]
    fn expiry_accepts_durations_dates_and_never() {
        assert_eq!(parse_expiry("never", NOW), Ok(None));
        assert_eq!(parse_expiry("2d", NOW), Ok(Some(NOW + chrono::TimeDelta::days(2))));
        let date = parse_expiry("2026-12-31 18:00", NOW).unwrap().unwrap();
        assert_eq!(date.to_rfc3339(), "2026-12-31T18:00:00+00:00");
        assert!(parse_expiry("2026-13-01", NOW).is_err());
        assert!(parse_expiry("soon", NOW).is_err());
    }

    #[test]
    fn an_edit_patches_only_what_changed_and_clears_what_was_emptied() {
        let mut form = Form::edit(&prepaid_key());
        assert_eq!(form.key_patch(NOW), Ok(KeyPatch::default()));
        type_into(&mut form, FieldId::RateLimit, "none");
        type_into(&mut form, FieldId::Models, "gpt-4o, claude");
        let patch = form.key_patch(NOW).unwrap();
        assert_eq!(patch.rate_limit, Patch::Clear);
        assert_eq!(patch.allowed_models, Patch::Set(vec!["gpt-4o".into(), "claude".into()]));
        assert!(patch.name.is_none() && patch.expires_at.is_keep());
    }

    #[test]
    fn the_credit_of_a_prepaid_key_is_edited_through_its_own_field() {
        assert!(Form::edit(&user_key()).field(FieldId::Credit).is_none(), "only prepaid keys have a credit");
        let mut form = Form::edit(&prepaid_key());
        assert_eq!(form.text(FieldId::Credit), "12.00");
        assert_eq!(form.credit_change(), Ok(None));
        type_into(&mut form, FieldId::Credit, "12");
        assert_eq!(form.credit_change(), Ok(None), "the same total again writes nothing");
        type_into(&mut form, FieldId::Credit, "-1");
        assert_eq!(form.first_error(NOW).unwrap().1, "credited total must not be negative");
        type_into(&mut form, FieldId::Credit, "20.5");
        assert_eq!(form.credit_change(), Ok(Some(Some(Money::from_micros(20_500_000)))));
        type_into(&mut form, FieldId::Credit, "none");
        assert_eq!(form.credit_change(), Ok(Some(None)));
        type_into(&mut form, FieldId::Credit, "");
        assert_eq!(form.credit_change(), Ok(Some(None)), "blank is unlimited too");
        assert_eq!(form.key_patch(NOW), Ok(KeyPatch::default()), "the credit is not part of the patch");
    }

    #[test]
    fn the_balance_field_only_counts_for_prepaid_keys() {
        let mut form = Form::create("alice");
        type_into(&mut form, FieldId::Balance, "abc");
        assert_eq!(form.first_error(NOW), None);
        form.focus = 2;
        assert!(form.cycle_choice(1));
        assert_eq!(form.first_error(NOW).unwrap().0, 3);
        type_into(&mut form, FieldId::Balance, "25");
        let spec = form.new_key_spec(NOW).unwrap();
        assert!(spec.standalone);
        assert_eq!(spec.balance, Some(Money::from_usd(25)));
        assert_eq!(spec.rate_limit, Some(100));
    }

    #[test]
    fn money_fields_take_what_the_flags_take() {
        let mut form = Form::create("alice");
        form.focus = 2;
        assert!(form.cycle_choice(1), "prepaid");
        type_into(&mut form, FieldId::Balance, "25");
        type_into(&mut form, FieldId::Budget, "0");
        assert_eq!(form.first_error(NOW).unwrap().1, "budget must be more than $0 (got $0.00); use none to remove it");
        type_into(&mut form, FieldId::Budget, "40");
        type_into(&mut form, FieldId::Refill, "-5");
        assert!(form.first_error(NOW).unwrap().1.starts_with("refill must be more than $0"));
        type_into(&mut form, FieldId::Refill, "10");
        type_into(&mut form, FieldId::LowBalance, "none");
        let spec = form.new_key_spec(NOW).unwrap();
        assert_eq!(spec.money.budget.map(|b| (b.amount, b.period)), Some((Money::from_usd(40), Period::Month)));
        assert_eq!(spec.money.refill.map(|r| (r.amount, r.mode)), Some((Money::from_usd(10), RefillMode::Add)));
        assert_eq!(spec.money.low_balance, Some(Money::ZERO), "none is no line");
    }

    #[test]
    fn an_edit_changes_only_the_money_fields_it_touched() {
        let key = prepaid_key();
        let mut form = Form::edit(&key);
        assert_eq!(form.key_patch(NOW), Ok(KeyPatch::default()), "opened and closed: nothing changes");
        let period = form.fields.iter().position(|f| f.id == FieldId::BudgetPeriod).unwrap();
        form.focus = period;
        assert!(form.cycle_choice(1), "month → week");
        type_into(&mut form, FieldId::Refill, "");
        let patch = form.key_patch(NOW).unwrap();
        let budget = key.money.budget.unwrap();
        assert_eq!(patch.money.budget, Patch::Set(crate::domain::Budget { period: Period::Week, ..budget }));
        assert_eq!(patch.money.refill, Patch::Clear, "blank removes the refill");
        assert!(patch.money.low_balance.is_keep());
        let user_form = Form::edit(&user_key());
        let refill = user_form.field(FieldId::Refill).unwrap();
        assert!(!user_form.is_active(refill), "a key billed to its owner has no refill");
    }
}
