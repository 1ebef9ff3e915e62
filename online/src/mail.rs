//! Mail: the verification, "you already have an Online ID" and password
//! reset messages, sent through SMTP when one is configured, otherwise
//! written as `.eml` files to the outbox folder (development and the demo:
//! no mail server needed; the link is logged so a person can follow it).

use std::path::PathBuf;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::secret::SecretString;

/// A mail to send. The body holds a one-time link, so the whole mail is as
/// secret as the link: nothing here is logged except the recipient and, in
/// outbox mode only, the link.
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub body: SecretString,
    pub link: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot build the mail: {0}")]
    Build(String),
    #[error("the SMTP server refused or could not be reached: {0}")]
    Smtp(String),
    #[error("cannot write the mail to the outbox {0}: {1}")]
    Outbox(PathBuf, String),
    #[error("invalid SMTP URL (expected smtp://host:port or smtps://...): {0}")]
    SmtpUrl(String),
}

/// Where mails go.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        folder: PathBuf,
        from: Mailbox,
    },
}

impl Mailer {
    /// Mails through the SMTP server at `url` (`smtp://host:port`,
    /// `smtp://host:port?tls=required`, `smtps://user:password@host`, as
    /// lettre reads them).
    pub fn smtp(url: &SecretString, from: &str) -> Result<Mailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            // The URL may hold a password: report the kind of error only.
            .map_err(|error| MailError::SmtpUrl(smtp_error_kind(&error)))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        Ok(Mailer::Smtp {
            transport,
            from: parse_mailbox(from)?,
        })
    }

    pub fn outbox(folder: PathBuf, from: &str) -> Result<Mailer, MailError> {
        std::fs::create_dir_all(&folder)
            .map_err(|error| MailError::Outbox(folder.clone(), error.to_string()))?;
        Ok(Mailer::Outbox {
            folder,
            from: parse_mailbox(from)?,
        })
    }

    /// Says where mails go, for the start-up log (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { .. } => "via the configured SMTP server".to_owned(),
            Mailer::Outbox { folder, .. } => format!("to the outbox {}", folder.display()),
        }
    }

    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from.clone(),
        };
        let message = Message::builder()
            .from(from)
            .to(parse_mailbox(&mail.to)?)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(plain_body(mail.body.expose()))
            .map_err(|error| MailError::Build(error.to_string()))?;
        match self {
            Mailer::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map_err(|error| MailError::Smtp(smtp_error_kind(&error)))?;
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent");
            }
            Mailer::Outbox { folder, .. } => {
                let name = format!(
                    "{}-{}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    Uuid::new_v4().simple()
                );
                let path = folder.join(&name);
                let partial = folder.join(format!(".{name}.partial"));
                let write = async {
                    tokio::fs::write(&partial, message.formatted()).await?;
                    tokio::fs::rename(&partial, &path).await
                };
                write
                    .await
                    .map_err(|error| MailError::Outbox(path.clone(), error.to_string()))?;
                // Outbox mode is for development and the demo, where nobody
                // can read mail: the link is logged on purpose so a person
                // can follow it. With SMTP configured it never is.
                tracing::info!(
                    to = %mail.to,
                    subject = %mail.subject,
                    path = %path.display(),
                    link = %mail.link.expose(),
                    "mail written to the outbox (no SMTP server configured)"
                );
            }
        }
        Ok(())
    }
}

/// Plain 7-bit text when the body allows it (ASCII, lines within the 998
/// characters RFC 5322 allows), so that the mail reads as written, links
/// included, in any mail program and in the outbox files. lettre on its own
/// would pick quoted-printable for any line of 76 characters or more, which
/// breaks links across lines.
fn plain_body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    if crlf.is_ascii() && crlf.split("\r\n").all(|line| line.len() <= 998) && !crlf.contains('\0') {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}

/// Wraps each paragraph (lines separated by a blank line) to `width`
/// characters; a word longer than that (a link) gets a line of its own.
fn wrap(text: &str, width: usize) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|paragraph| {
            let mut lines: Vec<String> = Vec::new();
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                    lines.push(std::mem::take(&mut line));
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
            if !line.is_empty() {
                lines.push(line);
            }
            lines.join("\n")
        })
        .collect();
    let mut wrapped = paragraphs.join("\n\n");
    wrapped.push('\n');
    wrapped
}

fn parse_mailbox(text: &str) -> Result<Mailbox, MailError> {
    text.parse()
        .map_err(|error: lettre::address::AddressError| {
            MailError::Address(text.to_owned(), error.to_string())
        })
}

/// lettre's errors can quote the server's answer and, for URL errors, the
/// URL; we keep the kind only, never the URL (it may hold a password).
fn smtp_error_kind(error: &lettre::transport::smtp::Error) -> String {
    if error.is_client() {
        "client error".to_owned()
    } else if error.is_transient() {
        format!("temporary failure ({error})")
    } else if error.is_permanent() {
        format!("permanent failure ({error})")
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_tls() {
        "TLS error".to_owned()
    } else {
        "connection error".to_owned()
    }
}

/// The texts. Plain ASCII English, no markup: a mail client shows them as
/// written and nobody can inject anything into them but the link.
pub mod texts {
    use super::*;

    pub fn verification(to: &str, link: &SecretString) -> OutgoingMail {
        OutgoingMail {
            to: to.to_owned(),
            subject: "Verify your Online ID for Online Desktop".to_owned(),
            body: SecretString::new(wrap(
                &format!(
                    "Hello,\n\n\
                 someone, probably you, asked to create an Online ID for Online Desktop with \
                 this e-mail address.\n\n\
                 To finish, open this link and choose a password:\n\n\
                 {}\n\n\
                 The link works once and for 24 hours. Your Online ID is not the login of your \
                 business software; it is what you use for Online Desktop.\n\n\
                 If you did not ask for this, ignore this e-mail: nothing happens without the \
                 link.\n",
                    link.expose()
                ),
                72,
            )),
            link: link.clone(),
        }
    }

    pub fn already_registered(
        to: &str,
        login_url: &str,
        reset_link: &SecretString,
    ) -> OutgoingMail {
        OutgoingMail {
            to: to.to_owned(),
            subject: "You already have an Online ID".to_owned(),
            body: SecretString::new(wrap(
                &format!(
                    "Hello,\n\n\
                 someone, probably you, asked to create an Online ID for Online Desktop with \
                 this e-mail address, but it already has one. Log in with it here:\n\n\
                 {login_url}\n\n\
                 If you have forgotten the password, choose a new one with this link (it works \
                 once and for 1 hour):\n\n\
                 {}\n\n\
                 If you did not ask for this, ignore this e-mail: your Online ID stays as it \
                 is.\n",
                    reset_link.expose()
                ),
                72,
            )),
            link: reset_link.clone(),
        }
    }

    pub fn password_reset(to: &str, link: &SecretString) -> OutgoingMail {
        OutgoingMail {
            to: to.to_owned(),
            subject: "Choose a new password for your Online ID".to_owned(),
            body: SecretString::new(wrap(
                &format!(
                    "Hello,\n\n\
                 someone, probably you, asked to reset the password of the Online ID for \
                 Online Desktop with this e-mail address.\n\n\
                 Open this link to choose a new password:\n\n\
                 {}\n\n\
                 The link works once and for 1 hour. Choosing a new password logs you out \
                 everywhere.\n\n\
                 If you did not ask for this, ignore this e-mail: your password stays as it \
                 is.\n",
                    link.expose()
                ),
                72,
            )),
            link: link.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_wrap_and_links_stay_whole() {
        let link = format!("https://online.example.com/verify?token={}", "x".repeat(43));
        let text = format!("{} word\n\n{link}\n", "word ".repeat(30));
        let wrapped = wrap(&text, 72);
        assert!(
            wrapped.lines().all(|line| line.len() <= 72 || line == link),
            "{wrapped}"
        );
        assert!(wrapped.contains(&format!("\n\n{link}\n")), "{wrapped}");
    }

    #[test]
    fn mails_are_plain_seven_bit_text_with_whole_links() {
        let link = SecretString::new(format!(
            "https://online.example.com/verify?token={}",
            "x".repeat(43)
        ));
        let mail = texts::verification("ann@example.com", &link);
        let body = plain_body(mail.body.expose());
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        let text = String::from_utf8(body.into_vec()).expect("ASCII");
        assert!(
            text.contains(&format!("\r\n{}\r\n", link.expose())),
            "{text}"
        );
    }
}
