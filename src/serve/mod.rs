//! `keytop serve`: keytop as an SSH server. Admins connect with `ssh -p 2222 host`, are known by
//! their public key, and each gets their own TUI, acting under their own name, with no shell and
//! no copy of the master key on their side.
//!
//! The accept loop caps connections, gives each a login deadline and runs it with russh;
//! [`connection`] authenticates and handles the channel requests; [`session`] runs one TUI.

mod admins;
mod connection;
mod host_key;
mod input;
mod presence;
mod screen;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use russh::MethodKind;
use russh::server::Config as SshConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

pub use admins::{Admin, AdminKeys, Role};
pub use presence::Presence;

use crate::config::ServeConfig;
use crate::service::KeyService;
use crate::tui::TuiOptions;
use connection::Connection;

/// How often the admins' keys are read again, so a revoked admin's open sessions close.
const REREAD_KEYS: Duration = Duration::from_secs(30);
/// How long sessions get to restore their terminals when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Dead clients are noticed by keepalives: one every this long, three unanswered and it is closed.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// What `keytop serve` was told on its command line.
#[derive(Debug, Clone, Default)]
pub struct ServeOverrides {
    pub listen: Option<String>,
    pub host_key: Option<PathBuf>,
    pub authorized_keys: Option<PathBuf>,
}

/// What every connection and session shares.
pub struct Shared {
    service: KeyService,
    options: TuiOptions,
    settings: ServeConfig,
    authorized_keys: PathBuf,
    /// Turns true on SIGTERM: every session quits.
    stopping: watch::Receiver<bool>,
    /// The admins' keys as last read: a session whose admin is no longer allowed ends.
    admin_keys: watch::Sender<Arc<AdminKeys>>,
    presence: Presence,
}

impl Shared {
    /// The admins as the file says now; an unreadable file lets nobody in (and says why in the log).
    /// Open sessions of admins no longer allowed are closed.
    fn load_admin_keys(&self) -> Arc<AdminKeys> {
        let keys = match AdminKeys::load(&self.authorized_keys, &self.settings.admins) {
            Ok((keys, warnings)) => {
                warnings.into_iter().for_each(log);
                keys
            }
            Err(error) => {
                log(format!("cannot read {}: {error}; nobody can log in", self.authorized_keys.display()));
                AdminKeys::default()
            }
        };
        let keys = Arc::new(keys);
        self.admin_keys.send_replace(keys.clone());
        keys
    }
}

/// One line of the connection log: on stderr (the journal, under systemd) and in the log file.
fn log(line: String) {
    tracing::info!(target: "keytop::serve", "{line}");
    eprintln!("keytop serve: {line}");
}

/// Serves until SIGTERM or Ctrl-C; then every session is closed, its terminal restored, and this
/// returns.
pub async fn run(
    service: KeyService,
    options: TuiOptions,
    mut settings: ServeConfig,
    overrides: ServeOverrides,
) -> anyhow::Result<()> {
    if let Some(listen) = overrides.listen {
        settings.listen = listen;
    }
    let host_key_path = overrides
        .host_key
        .or_else(|| settings.host_key.clone())
        .unwrap_or_else(|| crate::paths::data_dir().join("ssh_host_ed25519_key"));
    let authorized_keys = overrides
        .authorized_keys
        .or_else(|| settings.authorized_keys.clone())
        .unwrap_or_else(|| crate::paths::config_dir().join("authorized_keys"));

    let (host_key, created) = host_key::load_or_create(&host_key_path)?;
    let fingerprint = host_key::fingerprint(&host_key);
    if created {
        log(format!("created the host key {} ({fingerprint})", host_key_path.display()));
    }
    let (admin_keys, warnings) = AdminKeys::load(&authorized_keys, &settings.admins)
        .with_context(|| format!("cannot read the admins' keys {}", authorized_keys.display()))?;
    warnings.into_iter().for_each(log);
    anyhow::ensure!(
        !admin_keys.is_empty(),
        "no usable admin key in {}: add an admin's public key (a line of their ~/.ssh/id_ed25519.pub) first",
        authorized_keys.display()
    );
    let listener =
        TcpListener::bind(&settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
    log(format!(
        "listening on {} with {} admin keys from {}; host key {fingerprint}",
        listener.local_addr()?,
        admin_keys.len(),
        authorized_keys.display()
    ));

    let ssh_config = Arc::new(ssh_config(&settings, host_key));
    let (stop, stopping) = watch::channel(false);
    let sessions = Arc::new(Semaphore::new(settings.max_sessions));
    let (admin_keys, _) = watch::channel(Arc::new(admin_keys));
    let shared = Arc::new(Shared {
        service,
        options,
        settings,
        authorized_keys,
        stopping,
        admin_keys,
        presence: Presence::new(),
    });
    let mut connections = JoinSet::new();
    let shutdown = crate::cli::shutdown_signal();
    tokio::pin!(shutdown);
    let mut reread = tokio::time::interval_at(tokio::time::Instant::now() + REREAD_KEYS, REREAD_KEYS);
    let mut hangup = hangup_signal()?;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = reread.tick() => {
                shared.load_admin_keys();
            }
            Some(()) = hangup.recv() => {
                log("SIGHUP: reading the admins' keys again".into());
                shared.load_admin_keys();
            }
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => match sessions.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(serve_connection(shared.clone(), ssh_config.clone(), socket, peer, permit));
                    }
                    Err(_) => log(format!("refused {peer}: {} sessions already open", shared.settings.max_sessions)),
                },
                Err(error) => log(format!("accept failed: {error}")),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    log(format!("stopping: closing {} connections", connections.len()));
    let _ = stop.send(true);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_GRACE * 2, all_closed).await.is_err() {
        connections.abort_all();
    }
    log("stopped".into());
    Ok(())
}

fn ssh_config(settings: &ServeConfig, host_key: russh::keys::PrivateKey) -> SshConfig {
    SshConfig {
        methods: russh::MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: settings.auth_failure_delay,
        // OpenSSH opens with a "none" probe; refusing it is no failure worth slowing down.
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: settings.auth_attempts,
        keys: vec![host_key],
        // Idle admins are closed by the session's own input timer: this one also counts output,
        // so live updates would keep an idle session open forever.
        inactivity_timeout: None,
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: 3,
        // Without it Nagle's algorithm holds each keystroke's frame back for tens of milliseconds.
        nodelay: true,
        ..SshConfig::default()
    }
}

/// One connection, from the SSH handshake to its end: dropped if it has not authenticated within
/// the login grace time, closed when the server stops.
async fn serve_connection(
    shared: Arc<Shared>,
    config: Arc<SshConfig>,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let started = std::time::Instant::now();
    let grace = shared.settings.login_grace;
    let connection = Connection::new(shared.clone(), peer);
    let signed_in = connection.signed_in.clone();
    let running = match tokio::time::timeout(grace, russh::server::run_stream(config, socket, connection)).await {
        Ok(Ok(running)) => running,
        Ok(Err(error)) => return log(format!("connection from {peer} failed: {error}")),
        Err(_) => return log(format!("connection from {peer} closed: no SSH handshake within the login grace time")),
    };
    let handle = running.handle();
    tokio::pin!(running);
    let login_deadline = tokio::time::sleep(grace);
    tokio::pin!(login_deadline);
    let mut stopping = shared.stopping.clone();
    let mut stop_deadline = None;
    let reason = loop {
        tokio::select! {
            ended = &mut running => break match ended {
                Ok(()) => "closed".to_string(),
                Err(error) => format!("ended: {error}"),
            },
            () = &mut login_deadline, if signed_in.get().is_none() => {
                disconnect(&handle, "login grace time over").await;
                break "not authenticated within the login grace time".to_string();
            }
            // The session restores the client's terminal and closes its channel; the client
            // then hangs up. A connection still open after the grace is cut.
            () = until_stopping(&mut stopping), if stop_deadline.is_none() => {
                stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
            () = sleep_until_some(stop_deadline) => {
                disconnect(&handle, "the server is stopping").await;
                break "server stopping".to_string();
            }
        }
    };
    let who = match signed_in.get() {
        Some(admin) => format!(" admin={:?} key={}", admin.name, admin.fingerprint),
        None => String::new(),
    };
    log(format!("connection from {peer}{who} {reason} after {}s", started.elapsed().as_secs()));
}

/// SIGHUP, which re-reads the admins' keys (instead of ending the process).
#[cfg(unix)]
fn hangup_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Elsewhere there is no SIGHUP: the keys are read again on their timer only.
#[cfg(not(unix))]
fn hangup_signal() -> std::io::Result<NoHangup> {
    Ok(NoHangup)
}

#[cfg(not(unix))]
struct NoHangup;

#[cfg(not(unix))]
impl NoHangup {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}

/// Resolves once the server is stopping.
async fn until_stopping(stopping: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which happens only once the server has stopped.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

async fn disconnect(handle: &russh::server::Handle, why: &str) {
    let _ = handle.disconnect(russh::Disconnect::ByApplication, why.into(), String::new()).await;
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
