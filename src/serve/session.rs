//! One admin's TUI on one SSH channel: started on the shell request, acting under the admin's
//! name, and ended, whatever ends it (quit, idle, disconnect, error, panic, server stop), by
//! restoring the client's terminal and closing the channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use russh::ChannelId;
use russh::server::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinError;

use super::Shared;
use super::admins::{Admin, Role};
use super::input::{self, ClientInput};
use super::screen::{self, SshScreen};
use crate::tui::{self, ColorDepth, RemoteTerminal};

pub struct SessionSpec {
    pub admin: Admin,
    pub peer: SocketAddr,
    pub term: String,
    pub size: (u16, u16),
    pub color_depth: ColorDepth,
    pub handle: Handle,
    pub channel: ChannelId,
    pub input: mpsc::Receiver<ClientInput>,
}

/// Runs the session in its own task, so that a panic in it ends this session only.
pub fn spawn_session(shared: Arc<Shared>, spec: SessionSpec) {
    tokio::spawn(async move {
        let started = Instant::now();
        let (admin, peer, handle, channel) = (spec.admin.clone(), spec.peer, spec.handle.clone(), spec.channel);
        let present = shared.presence.join(&admin.name);
        super::log(format!(
            "session start admin={:?} key={} peer={peer} term={} colors={} size={}x{}",
            admin.name,
            admin.fingerprint,
            spec.term,
            spec.color_depth.as_str(),
            spec.size.0,
            spec.size.1
        ));
        let ended = tokio::spawn(run_tui(shared.clone(), spec)).await;
        let stopped_by = if *shared.stopping.borrow() {
            Some(StoppedBy::Server)
        } else if !shared.admin_keys.borrow().allows(&admin) {
            Some(StoppedBy::Revocation)
        } else {
            None
        };
        let ending = Ending::of(ended, stopped_by);
        finish(&handle, channel, &ending).await;
        drop(present);
        super::log(format!(
            "session end admin={:?} key={} peer={peer} after {}s: {} ({} sessions left)",
            admin.name,
            admin.fingerprint,
            started.elapsed().as_secs(),
            ending.reason,
            shared.presence.count()
        ));
    });
}

async fn run_tui(shared: Arc<Shared>, spec: SessionSpec) -> anyhow::Result<()> {
    let screen = SshScreen::new(spec.handle, spec.channel, spec.size)?;
    let input = input::events(spec.input, shared.settings.idle_timeout);
    let service = shared.service.acting_for(spec.admin.name.clone(), spec.admin.fingerprint.clone());
    let mut options = shared.options.clone();
    options.read_only |= spec.admin.role == Role::ReadOnly;
    // One process sweeps for everyone (keytop-sweep.service), not every session on its own timer.
    options.sweep.enabled = false;
    let mut stopping = shared.stopping.clone();
    let mut admin_keys = shared.admin_keys.subscribe();
    let admin = spec.admin.clone();
    let stop = async move {
        tokio::select! {
            () = super::until_stopping(&mut stopping) => {}
            _ = admin_keys.wait_for(|keys| !keys.allows(&admin)) => {}
        }
    };
    let mut presence = shared.presence.watch();
    presence.mark_changed(); // so the session starts with the list as it is
    let terminal =
        RemoteTerminal { screen, input, size: spec.size, color_depth: spec.color_depth, presence: Some(presence) };
    tui::run_remote(service, options, terminal, stop).await
}

/// How a session ended: its exit status, what the client is told, what the log says.
#[derive(Debug, PartialEq, Eq)]
struct Ending {
    status: u32,
    message: Option<String>,
    reason: String,
}

/// Why a session was told to quit, when it was not the admin's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoppedBy {
    Server,
    /// The admin's key left authorized_keys, or their role changed.
    Revocation,
}

impl Ending {
    fn of(ended: Result<anyhow::Result<()>, JoinError>, stopped_by: Option<StoppedBy>) -> Ending {
        match ended {
            Ok(Ok(())) if stopped_by == Some(StoppedBy::Server) => {
                Ending { status: 0, message: Some("the server is stopping".into()), reason: "server stopping".into() }
            }
            Ok(Ok(())) if stopped_by == Some(StoppedBy::Revocation) => Ending {
                status: 1,
                message: Some("your key is no longer authorized as it was; connect again".into()),
                reason: "key revoked or role changed".into(),
            },
            Ok(Ok(())) => Ending { status: 0, message: None, reason: "quit".into() },
            Ok(Err(error)) => {
                let reason = format!("{error:#}");
                Ending { status: 1, message: Some(reason.clone()), reason }
            }
            Err(error) => Ending {
                status: 1,
                message: Some("internal error; the session was closed (the server goes on)".into()),
                reason: if error.is_panic() { format!("panic: {}", panic_text(error)) } else { "cancelled".into() },
            },
        }
    }
}

fn panic_text(error: JoinError) -> String {
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Restores the client's terminal, says why the session ended if it was not a quit, and closes
/// the channel. Each step may fail because the client is already gone; there is nothing to do then.
async fn finish(handle: &Handle, channel: ChannelId, ending: &Ending) {
    let mut bytes = screen::leave_sequence();
    if let Some(message) = &ending.message {
        bytes.extend(format!("keytop: {message}\r\n").into_bytes());
    }
    if screen::send(handle.clone(), channel, bytes).await.is_ok() {
        let _ = handle.exit_status_request(channel, ending.status).await;
        let _ = handle.eof(channel).await;
    }
    let _ = handle.close(channel).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_ending_with_its_message() {
        let ended = tokio::spawn(async { panic!("boom in the view") }).await;
        let ending = Ending::of(ended, None);
        assert_eq!(ending.status, 1);
        assert_eq!(ending.reason, "panic: boom in the view");
        assert!(ending.message.unwrap().contains("the server goes on"));
    }

    #[test]
    fn a_quit_ends_quietly_and_a_stop_says_so() {
        assert_eq!(Ending::of(Ok(Ok(())), None), Ending { status: 0, message: None, reason: "quit".into() });
        assert_eq!(Ending::of(Ok(Ok(())), Some(StoppedBy::Server)).message.as_deref(), Some("the server is stopping"));
        let idle = Ending::of(Ok(Err(anyhow::anyhow!("closed after the idle timeout"))), None);
        assert_eq!((idle.status, idle.reason.as_str()), (1, "closed after the idle timeout"));
    }
}
