//! One SSH connection: public-key authentication against the admins' keys, one session channel
//! with a pty and a shell, and nothing else (no exec, no subsystems, no forwarding).
//!
//! russh runs these callbacks inline in the connection's loop, so none of them waits on the TUI:
//! input is handed to the session with `try_send`, and the `Channel` russh offers is dropped at
//! once (left unread, it would stall the connection after a hundred messages).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;

use russh::keys::ssh_key::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::sync::mpsc;

use super::Shared;
use super::admins::{Admin, AdminKeys};
use super::input::ClientInput;
use super::screen::clamp_size;
use super::session::{SessionSpec, spawn_session};
use crate::tui::ColorDepth;

/// Input waiting for a busy session, in packets; more is dropped (and counted) rather than queued.
const INPUT_QUEUE: usize = 256;
/// Variables a client may set with `SendEnv`/`SetEnv`; only these are looked at.
const ALLOWED_ENV: [&str; 3] = ["NO_COLOR", "COLORTERM", "LANG"];

pub struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Read on the first authentication attempt, so that every connection sees the file as it is.
    admin_keys: Option<Arc<AdminKeys>>,
    /// Set once authenticated: the login grace timer and the connection's log line look at it.
    pub signed_in: Arc<OnceLock<Admin>>,
    channel: Option<ChannelId>,
    pty: Option<Pty>,
    /// `NO_COLOR` (non-empty) and `COLORTERM` as the client sent them, for its colour depth.
    no_color: bool,
    colorterm: Option<String>,
    input: Option<mpsc::Sender<ClientInput>>,
    dropped_input: u64,
}

struct Pty {
    term: String,
    size: (u16, u16),
}

impl Connection {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Connection {
        Connection {
            shared,
            peer,
            admin_keys: None,
            signed_in: Arc::new(OnceLock::new()),
            channel: None,
            pty: None,
            no_color: false,
            colorterm: None,
            input: None,
            dropped_input: 0,
        }
    }

    fn lookup(&mut self, key: &russh::keys::PublicKey) -> Option<Admin> {
        let keys = self.admin_keys.get_or_insert_with(|| self.shared.load_admin_keys());
        keys.find(key).cloned()
    }

    fn log_refusal(&self, key: &russh::keys::PublicKey) {
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        super::log(format!("auth refused peer={} key={fingerprint}: not in authorized_keys", self.peer));
    }

    fn forward(&mut self, input: ClientInput) {
        if let Some(sender) = &self.input
            && sender.try_send(input).is_err()
        {
            self.dropped_input += 1;
        }
    }

    /// Tells the client why in one line on stderr, then ends the channel with status 1.
    fn refuse(&self, channel: ChannelId, message: &str, session: &mut Session) -> Result<(), russh::Error> {
        session.extended_data(channel, 1, format!("keytop: {message}\r\n").into_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, _user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        // Ownership of the key is not proven yet: only say whether it is worth signing with.
        if self.lookup(offer.public_key).is_some() {
            return Ok(Auth::Accept);
        }
        self.log_refusal(offer.public_key);
        Ok(Auth::reject())
    }

    async fn auth_publickey(&mut self, _user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        // The SSH user name is ignored: the key says who the admin is.
        match self.lookup(key.public_key) {
            Some(admin) => {
                super::log(format!(
                    "auth ok peer={} admin={:?} role={} key={}",
                    self.peer,
                    admin.name,
                    admin.role.as_str(),
                    admin.fingerprint
                ));
                let _ = self.signed_in.set(admin);
                Ok(Auth::Accept)
            }
            None => {
                self.log_refusal(key.public_key);
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel.is_some() {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        } else {
            self.channel = Some(channel.id());
            reply.accept().await;
        }
        drop(channel); // events arrive through the callbacks below
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // russh's signature
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pty = Some(Pty { term: term.to_string(), size: clamp_size(cols, rows) });
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !ALLOWED_ENV.contains(&name) && !name.starts_with("LC_") {
            return session.channel_failure(channel);
        }
        match name {
            "NO_COLOR" => self.no_color = !value.is_empty(),
            "COLORTERM" => self.colorterm = Some(value.to_string()),
            _ => {}
        }
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let (Some(admin), Some(pty)) = (self.signed_in.get().cloned(), self.pty.as_ref()) else {
            // No pty: there is no terminal to draw on (ssh -T, or a pipe).
            return self.refuse(channel, "keytop needs a terminal: connect with ssh -t", session);
        };
        if pty.term == "dumb" || pty.term.is_empty() {
            return self.refuse(channel, "keytop needs a terminal that can draw (TERM is dumb)", session);
        }
        let (sender, receiver) = mpsc::channel(INPUT_QUEUE);
        self.input = Some(sender);
        spawn_session(
            self.shared.clone(),
            SessionSpec {
                admin,
                peer: self.peer,
                term: pty.term.clone(),
                size: pty.size,
                color_depth: ColorDepth::detect(Some(&pty.term), self.colorterm.as_deref(), self.no_color),
                handle: session.handle(),
                channel,
                input: receiver,
            },
        );
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.refuse(channel, "commands are not run here; connect without one to get the console", session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.refuse(channel, &format!("no subsystem {name:?} here; connect without one to get the console"), session)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn data(&mut self, _channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        self.forward(ClientInput::Data(data.to_vec()));
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        _channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (width, height) = clamp_size(cols, rows);
        self.forward(ClientInput::Resize(width, height));
        Ok(())
    }

    async fn channel_eof(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.input = None; // the session's input ends, and so does the session
        Ok(())
    }

    async fn channel_close(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.input = None;
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.dropped_input > 0 {
            super::log(format!(
                "peer={}: {} input packets dropped while the session was busy",
                self.peer, self.dropped_input
            ));
        }
    }
}
