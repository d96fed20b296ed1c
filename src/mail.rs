//! Mail to students, over SMTP with `lettre` (no shell-out to a mail program): the monitor's
//! only network traffic besides Docker.
//!
//! A send is bounded: each step of the SMTP dialogue has [`STEP_TIMEOUT`], the whole mail
//! [`SEND_DEADLINE`]; a slow or dead mail server costs a pass at most that, and the pass's
//! other work does not wait for it (the monitor sends while it does the rest). A mail that
//! could not be sent is the caller's to log and retry; nothing here retries.
//!
//! The password is read from its file ([`crate::store::config::mail`]) when the mailer is made and
//! given only to lettre's credentials: it is in no argument list, environment, label or log
//! line, and lettre's errors do not carry it.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::store::config::mail::{MailSettings, Security};

/// How long one step of the SMTP dialogue (connect, greeting, each command) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one mail may take, all steps together.
pub const SEND_DEADLINE: Duration = Duration::from_secs(25);

/// One mail, plain text.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

impl Mailer {
    /// A mailer for the configured server, introducing itself as `hello_name` (this host).
    pub fn new(settings: &MailSettings, hello_name: &str) -> Result<Mailer> {
        let server = format!("{}:{} ({})", settings.host, settings.port, settings.security.word());
        let tls = || {
            TlsParameters::new(settings.host.clone())
                .with_context(|| format!("cannot set up TLS for the mail server {server}"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .timeout(Some(STEP_TIMEOUT))
            .hello_name(ClientId::Domain(hello_name.to_string()));
        builder = match settings.security {
            // Required: a server that does not offer STARTTLS gets no mail, rather than a
            // password or a student's address in the clear.
            Security::Starttls => builder.tls(Tls::Required(tls()?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
            Security::None => builder.tls(Tls::None),
        };
        if let (Some(user), Some(password)) = (&settings.user, settings.password()?) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer { transport: builder.build(), from: settings.from.clone(), server })
    }

    /// Sends one mail within [`SEND_DEADLINE`].
    pub async fn send(&self, mail: &Mail) -> Result<()> {
        let message = message(&self.from, mail)?;
        match tokio::time::timeout(SEND_DEADLINE, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(anyhow!("the mail server {} did not take it: {error}", self.server)),
            Err(_) => {
                Err(anyhow!("the mail server {} did not answer within {} s", self.server, SEND_DEADLINE.as_secs()))
            }
        }
    }
}

/// The message as it is sent: plain text, UTF-8.
pub fn message(from: &Mailbox, mail: &Mail) -> Result<Message> {
    let to: Mailbox = mail.to.parse().with_context(|| format!("{:?} is not an e-mail address", mail.to))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .context("cannot build the mail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_has_its_headers_and_body() {
        let mail = Mail {
            to: "alice@lab.test".into(),
            subject: "Your container is ready".into(),
            body: "ssh root@gpu1 -p 10001\n".into(),
        };
        let from: Mailbox = "GPU booking <gpu@lab.test>".parse().unwrap();
        let text = String::from_utf8(message(&from, &mail).unwrap().formatted()).unwrap();
        assert!(text.contains("From: \"GPU booking\" <gpu@lab.test>\r\n"), "{text}");
        assert!(text.contains("To: alice@lab.test\r\n"), "{text}");
        assert!(text.contains("Subject: Your container is ready\r\n"), "{text}");
        assert!(text.contains("ssh root@gpu1 -p 10001"), "{text}");
        assert!(message(&from, &Mail { to: "x\r\nBcc: y@z.test".into(), ..mail }).is_err());
    }
}
