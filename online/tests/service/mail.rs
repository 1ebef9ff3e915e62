//! Mail delivery: SMTP when configured, the outbox folder otherwise.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use od_online::testing::{Mail, TestServer, TEST_PASSWORD};

use crate::*;

/// What the sink received for one mail.
#[derive(Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server on 127.0.0.1 that accepts every mail and hands it
/// to the test: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
pub struct SmtpSink {
    pub port: u16,
    received: mpsc::Receiver<Received>,
    _thread: JoinHandle<()>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the SMTP sink");
        let port = listener.local_addr().expect("its address").port();
        let (sender, received) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let _ = serve_smtp(stream, &sender);
                });
            }
        });
        SmtpSink {
            port,
            received,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next mail, waiting for it.
    pub fn next(&self) -> Received {
        self.received
            .recv_timeout(Duration::from_secs(20))
            .expect("a mail at the SMTP sink")
    }
}

fn serve_smtp(stream: TcpStream, sender: &mpsc::Sender<Received>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut reply = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes());
    reply("220 sink.test ESMTP ready")?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => reply("250 sink.test")?,
            "MAIL" => {
                mail_from = command
                    .split_once(':')
                    .map_or("", |(_, rest)| rest)
                    .trim()
                    .to_owned();
                reply("250 OK")?
            }
            "RCPT" => {
                rcpt_to.push(
                    command
                        .split_once(':')
                        .map_or("", |(_, rest)| rest)
                        .trim()
                        .to_owned(),
                );
                reply("250 OK")?
            }
            "DATA" => {
                reply("354 End data with <CR><LF>.<CR><LF>")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-stuffing: a leading dot was doubled by the client.
                    data.push_str(
                        line.strip_prefix('.')
                            .filter(|_| line.starts_with(".."))
                            .unwrap_or(&line),
                    );
                }
                let _ = sender.send(Received {
                    mail_from: std::mem::take(&mut mail_from),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                reply("250 OK queued")?
            }
            "RSET" | "NOOP" => reply("250 OK")?,
            "QUIT" => {
                reply("221 Bye")?;
                return Ok(());
            }
            _ => reply("502 Command not implemented")?,
        }
    }
}

#[test]
fn with_smtp_configured_mails_go_to_the_smtp_server() {
    let sink = SmtpSink::start();
    let server = TestServer::builder()
        .smtp_url(sink.url())
        .configure(|config| config.mail_from = "Online Desktop <online@nordlys.example>".into())
        .start();
    assert_eq!(sign_up(&server, "ann@example.com").status, 202);
    let received = sink.next();
    assert_eq!(received.mail_from, "<online@nordlys.example>");
    assert_eq!(received.rcpt_to, ["<ann@example.com>"]);
    let mail = Mail::parse(&received.data);
    assert_eq!(mail.to, "ann@example.com");
    assert_eq!(mail.subject, "Verify your Online ID for Online Desktop");
    assert!(
        mail.from.contains("online@nordlys.example"),
        "{}",
        mail.from
    );
    let token = mail.token().expect("a link with a token");
    assert_eq!(verify(&server, &token, TEST_PASSWORD).status, 200);

    // Nothing in the outbox, and the link is not logged.
    assert!(server.outbox().mails().is_empty());
    let logs = server.logs();
    assert!(logs.contains("mail sent"), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
}

#[test]
fn without_smtp_mails_are_written_to_the_outbox_and_their_link_is_logged() {
    let server = TestServer::start();
    assert_eq!(sign_up(&server, "ann@example.com").status, 202);
    let mail = server.outbox().wait_for_mail_to("ann@example.com");
    let path = mail.path.clone().expect("an outbox file");
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("eml"));
    assert!(path.starts_with(server.data_dir()));
    let raw = std::fs::read_to_string(&path).expect("the .eml file");
    assert!(raw.contains("Content-Transfer-Encoding: 7bit"), "{raw}");
    let link = mail.link().expect("a link");
    assert!(
        raw.contains(&link),
        "the link reads whole in the file: {raw}"
    );
    // The file is visible before the log line that follows it is written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let logs = server.logs();
        if logs.contains("mail written to the outbox") || std::time::Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(logs.contains("mail written to the outbox"), "{logs}");
    assert!(logs.contains(&link), "{logs}");
}

#[test]
fn an_unreachable_smtp_server_is_logged_and_the_answer_stays_the_same() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a port")
        .port();
    let server = TestServer::builder()
        .smtp_url(format!("smtp://127.0.0.1:{port}"))
        .start();
    let answer = sign_up(&server, "ann@example.com");
    assert_eq!(answer.status, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.logs().contains("a mail could not be sent") {
        assert!(std::time::Instant::now() < deadline, "{}", server.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}
