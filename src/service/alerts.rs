//! Alerts: after a write that may cross a line (a usage record, a top-up or a deduction) and at
//! each sweep, the store claims the alerts that now hold, each key, event and period once
//! whoever looks (see [`crate::store::alerts`]), and `alerts.command` runs once per claim with
//! the facts in its environment.
//!
//! The command is started and not waited for: the write that crossed the line returns at once,
//! in the gateway's `usage record` as in the TUI. A running command is killed at its timeout.
//! A process about to exit (the command line) waits for the commands it started, at most that
//! timeout, so each one's failure is logged and none outlives keytop unwatched. An alert that
//! fails is logged and never retried: at most once, never a flood of repeats.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::KeyService;
use crate::domain::alert::BALANCE_PERIOD;
use crate::domain::{Alert, AlertEvent};
use crate::store::alerts::{AlertCheck, AlertClaim, AlertScope};

/// Alert commands running at once: the first sweep after alerts are turned on may claim an alert
/// for every key already under its line.
const MAX_RUNNING: usize = 8;
/// How much of a failed command's stderr goes into the log.
const STDERR_LOGGED: usize = 500;

/// The program run for each alert, with its arguments (no shell), and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCommand {
    pub program_and_args: Vec<String>,
    pub timeout: Duration,
}

/// Starts alert commands and keeps track of them until they end.
pub(super) struct AlertRunner {
    command: AlertCommand,
    slots: Arc<Semaphore>,
    running: Mutex<JoinSet<()>>,
}

impl AlertRunner {
    /// `None` when the command is empty: alerts are off.
    pub(super) fn new(command: &AlertCommand) -> Option<AlertRunner> {
        (!command.program_and_args.is_empty()).then(|| AlertRunner {
            command: command.clone(),
            slots: Arc::new(Semaphore::new(MAX_RUNNING)),
            running: Mutex::new(JoinSet::new()),
        })
    }

    fn start(&self, alert: Alert) {
        let (command, slots) = (self.command.clone(), self.slots.clone());
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while running.try_join_next().is_some() {}
        running.spawn(async move {
            let _slot = slots.acquire_owned().await;
            run(&command, &alert).await;
        });
    }

    async fn finish(&self) {
        let mut running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        while running.join_next().await.is_some() {}
    }
}

/// Runs the command for one alert and logs how it ended.
async fn run(command: &AlertCommand, alert: &Alert) {
    let (program, args) = command.program_and_args.split_first().expect("an alert runner has a program");
    let mut process = tokio::process::Command::new(program);
    process.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    // The command gets keytop's environment without keytop's own settings (the master key, a
    // database URL with its password), and the alert's facts.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYTOP_") {
            process.env_remove(name);
        }
    }
    process.envs(alert.environment());
    let (event, key) = (alert.event.as_str(), alert.key_id);
    let child = match process.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::warn!(event, %key, program, %error, "the alert command could not be started");
            return;
        }
    };
    match tokio::time::timeout(command.timeout, child.wait_with_output()).await {
        Err(_) => {
            tracing::warn!(event, %key, program, timeout = ?command.timeout, "the alert command timed out and was killed")
        }
        Ok(Err(error)) => tracing::warn!(event, %key, program, %error, "the alert command failed"),
        Ok(Ok(output)) if !output.status.success() => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr: String = stderr.chars().take(STDERR_LOGGED).collect();
            tracing::warn!(event, %key, program, status = %output.status, stderr = stderr.trim(), "the alert command failed");
        }
        Ok(Ok(_)) => tracing::info!(event, %key, program, "alert sent"),
    }
}

impl KeyService {
    /// Claims the alerts that hold in `scope` now and starts the command for each. Never fails:
    /// an alert is worth less than the write or sweep that led to it, so errors are logged.
    pub(super) async fn raise_alerts(&self, scope: AlertScope) {
        let Some(runner) = &self.alerts else { return };
        let check = AlertCheck::at(self.now(), self.settings.low_balance);
        let claims = match self.store.claim_alerts(scope, &check).await {
            Ok(claims) => claims,
            Err(error) => {
                tracing::warn!(%error, "alerts were not checked");
                return;
            }
        };
        for claim in claims {
            match self.alert_of(&claim, &check).await {
                Ok(Some(alert)) => runner.start(alert),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(key = %claim.key_id, event = %claim.event, %error, "an alert was claimed but not sent")
                }
            }
        }
    }

    /// Waits for the alert commands this service started (each ends within its timeout).
    pub async fn finish_alerts(&self) {
        if let Some(runner) = &self.alerts {
            runner.finish().await;
        }
    }

    /// The facts of a claimed alert; `None` when the key was purged meanwhile.
    async fn alert_of(&self, claim: &AlertClaim, check: &AlertCheck) -> super::ServiceResult<Option<Alert>> {
        let Some(key) = self.store.key(claim.key_id).await? else { return Ok(None) };
        let view = self.money_view(&key).await?;
        let period = match (claim.event, view.budget) {
            (AlertEvent::BudgetReached, Some(budget)) => budget.span.label(),
            (AlertEvent::BudgetReached, None) => claim.period.clone(),
            _ => BALANCE_PERIOD.to_string(),
        };
        Ok(Some(Alert {
            event: claim.event,
            key_id: key.id,
            remaining: key.balance().and_then(|balance| balance.remaining),
            low_balance: self.low_balance_line(&key),
            budget: view.budget.map(|budget| (budget.budget.amount, budget.spent)),
            period,
            at: check.now,
            key_name: key.name,
            key_hint: key.key_hint,
            owner: key.owner_name,
        }))
    }
}
