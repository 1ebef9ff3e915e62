//! The few HTML pages an Online ID needs before the web desktop exists:
//! choose a password (`/verify`), choose a new one (`/reset`), log in
//! (`/login`, with sign-up and "forgot password"). Plain forms and a few
//! lines of script that call the API; no framework.
//!
//! Anything echoed into a page is markup-escaped, scripts run only with the
//! page's nonce (Content-Security-Policy), and answers from the API are
//! shown with `textContent`, never as markup.

use axum::extract::Query;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::tokens::random_bytes;

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted
/// attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
padding:0 1rem;color:#222}label{display:block;margin:.8rem 0 .2rem}input{width:100%;\
padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}\
#message{margin-top:1rem;font-weight:bold}.hidden{display:none}small{color:#555}";

/// The helper every page's script uses: JSON to the API, the answer back.
const CALL_API: &str = r#"
async function callApi(method, path, body, csrf) {
  const headers = {"Content-Type": "application/json"};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body)});
  let json = null;
  try { json = await response.json(); } catch (e) { json = null; }
  return {status: response.status, json};
}
function show(text) { document.getElementById("message").textContent = text; }
function errorText(answer) {
  return answer.json && answer.json.error ? answer.json.error.message
    : "The online service did not answer as expected. Try again later.";
}
"#;

fn page(title: &str, body: &str, script: &str) -> Response {
    let mut nonce = [0u8; 16];
    if random_bytes(&mut nonce).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Try again later.").into_response();
    }
    let nonce = STANDARD_NO_PAD.encode(nonce);
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Online Desktop</title><style nonce=\"{nonce}\">{STYLE}</style></head>\
         <body><h1>{title}</h1>{body}<p id=\"message\" role=\"status\"></p>\
         <script nonce=\"{nonce}\">{CALL_API}{script}</script></body></html>\n",
        title = escape(title),
    );
    let policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let mut response = Html(html).into_response();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

fn password_form(token: &str, button: &str) -> String {
    format!(
        "<form id=\"form\"><input type=\"hidden\" id=\"token\" value=\"{token}\">\
         <label for=\"password\">New password</label>\
         <input type=\"password\" id=\"password\" autocomplete=\"new-password\" minlength=\"8\" \
         maxlength=\"128\" required>\
         <label for=\"repeat\">The same password again</label>\
         <input type=\"password\" id=\"repeat\" autocomplete=\"new-password\" required>\
         <p><small>At least 8 characters. A few words you can remember make a good password. \
         Your Online ID is not the login of your business software.</small></p>\
         <button type=\"submit\">{button}</button></form>",
        token = escape(token),
    )
}

const PASSWORD_SCRIPT: &str = r#"
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = document.getElementById("password").value;
  if (password !== document.getElementById("repeat").value) {
    show("The two passwords are not the same."); return;
  }
  const answer = await callApi("POST", ENDPOINT, makeBody(document.getElementById("token").value, password));
  if (answer.status === 200 || answer.status === 204) {
    document.getElementById("form").classList.add("hidden");
    show(DONE);
  } else { show(errorText(answer)); }
});
"#;

/// `GET /verify?token=…`: choose the first password.
pub async fn verify(Query(query): Query<TokenQuery>) -> Response {
    let script = format!(
        "const ENDPOINT = \"/api/v1/accounts/verify\";\
         const DONE = \"Your Online ID is ready. Go back to the connect wizard and log in, or log in here: /login\";\
         function makeBody(token, password) {{ return {{token, password}}; }}{PASSWORD_SCRIPT}"
    );
    page(
        "Choose a password for your Online ID",
        &password_form(&query.token, "Save password"),
        &script,
    )
}

/// `GET /reset?token=…`: choose a new password.
pub async fn reset(Query(query): Query<TokenQuery>) -> Response {
    let script = format!(
        "const ENDPOINT = \"/api/v1/accounts/password-reset/confirm\";\
         const DONE = \"Your password is changed and you are logged out everywhere. Log in again with the new password: /login\";\
         function makeBody(token, new_password) {{ return {{token, new_password}}; }}{PASSWORD_SCRIPT}"
    );
    page(
        "Choose a new password",
        &password_form(&query.token, "Save new password"),
        &script,
    )
}

const LOGIN_BODY: &str = r#"
<form id="login">
<label for="email">E-mail address</label><input type="email" id="email" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
<div id="me" class="hidden"><p id="who"></p><ul id="companies"></ul><button id="logout">Log out</button></div>
<hr>
<form id="other">
<label for="other-email">No Online ID yet, or forgot the password? Your e-mail address:</label>
<input type="email" id="other-email" autocomplete="email" required>
<button type="submit" id="signup">Create an Online ID</button>
<button type="submit" id="forgot">Send me a new password link</button>
</form>
"#;

const LOGIN_SCRIPT: &str = r#"
let csrf = null;
function csrfToken() {
  if (csrf) return csrf;
  const pair = document.cookie.split("; ").find((item) => item.startsWith("od_csrf="));
  return pair ? pair.substring(8) : null;
}
async function showMe(quiet) {
  const answer = await callApi("GET", "/api/v1/me");
  if (answer.status !== 200) { if (!quiet) show(errorText(answer)); return; }
  document.getElementById("login").classList.add("hidden");
  document.getElementById("me").classList.remove("hidden");
  document.getElementById("who").textContent = "Logged in as " + answer.json.email + ".";
  const list = document.getElementById("companies");
  list.replaceChildren();
  for (const company of answer.json.companies) {
    const item = document.createElement("li");
    item.textContent = company.name + " (" + company.role.replace("_", " ") + ")";
    list.appendChild(item);
  }
  show(answer.json.companies.length ? "" : "No company is connected with this Online ID yet.");
}
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await callApi("POST", "/api/v1/sessions", {
    email: document.getElementById("email").value,
    password: document.getElementById("password").value});
  if (answer.status === 200) { csrf = answer.json.csrf_token; await showMe(false); }
  else { show(errorText(answer)); }
});
document.getElementById("logout").addEventListener("click", async () => {
  const answer = await callApi("DELETE", "/api/v1/sessions/current", undefined, csrfToken());
  if (answer.status === 204) {
    document.getElementById("me").classList.add("hidden");
    document.getElementById("login").classList.remove("hidden");
    show("You are logged out.");
  } else { show(errorText(answer)); }
});
document.getElementById("other").addEventListener("submit", async (event) => {
  event.preventDefault();
  const path = event.submitter && event.submitter.id === "forgot"
    ? "/api/v1/accounts/password-reset" : "/api/v1/accounts";
  const answer = await callApi("POST", path, {email: document.getElementById("other-email").value});
  show(answer.status === 202 ? answer.json.message : errorText(answer));
});
showMe(true);
"#;

/// `GET /login`: log in, or sign up, or ask for a new password.
pub async fn login() -> Response {
    page("Log in with your Online ID", LOGIN_BODY, LOGIN_SCRIPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
