//! The connect wizard (ABI 1.2): typed wrappers for
//! `od_plugin_wizard_open/page/set/action/close` and the page, copied out
//! of the add-on's JSON (docs/WIZARD.md).

use std::ffi::CString;

use od_abi::*;
use serde_json::Value;

use super::instance::{CallError, Instance};

/// What the person asks the wizard to do (`OD_WIZARD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WizardAction {
    Next,
    Back,
    Cancel,
    Finish,
    CreateOnlineId,
    Recheck,
}

impl WizardAction {
    pub const ALL: [WizardAction; 6] = [
        WizardAction::Next,
        WizardAction::Finish,
        WizardAction::CreateOnlineId,
        WizardAction::Recheck,
        WizardAction::Back,
        WizardAction::Cancel,
    ];

    pub fn code(self) -> od_wizard_action {
        match self {
            WizardAction::Next => OD_WIZARD_NEXT,
            WizardAction::Back => OD_WIZARD_BACK,
            WizardAction::Cancel => OD_WIZARD_CANCEL,
            WizardAction::Finish => OD_WIZARD_FINISH,
            WizardAction::CreateOnlineId => OD_WIZARD_CREATE_ONLINE_ID,
            WizardAction::Recheck => OD_WIZARD_RECHECK,
        }
    }

    /// The button's words.
    pub fn label(self) -> &'static str {
        match self {
            WizardAction::Next => "Next",
            WizardAction::Back => "Back",
            WizardAction::Cancel => "Cancel",
            WizardAction::Finish => "Finish",
            WizardAction::CreateOnlineId => "Create a new Online ID",
            WizardAction::Recheck => "Check again",
        }
    }
}

/// What the wizard is opened for (`OD_WIZARD_MODE_*`, docs/WIZARD.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WizardMode {
    Connect,
    UpdateConnection,
    Disconnect,
    ChangeUser,
    /// (ABI 1.3) Make this computer the sync computer (or bring back a
    /// sync computer whose add-on folder was lost).
    SyncComputer,
}

impl WizardMode {
    pub fn code(self) -> od_wizard_mode {
        match self {
            WizardMode::Connect => OD_WIZARD_MODE_CONNECT,
            WizardMode::UpdateConnection => OD_WIZARD_MODE_UPDATE_CONNECTION,
            WizardMode::Disconnect => OD_WIZARD_MODE_DISCONNECT,
            WizardMode::ChangeUser => OD_WIZARD_MODE_CHANGE_USER,
            WizardMode::SyncComputer => OD_WIZARD_MODE_SYNC_COMPUTER,
        }
    }

    /// The menu entry's words.
    pub fn label(self) -> &'static str {
        match self {
            WizardMode::Connect => "Connect to Online Desktop",
            WizardMode::UpdateConnection => "Update connection",
            WizardMode::Disconnect => "Disconnect from Online Desktop",
            WizardMode::ChangeUser => "Change user",
            WizardMode::SyncComputer => "Sync computer",
        }
    }
}

/// One field of a page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WizardField {
    pub id: String,
    pub label: String,
    /// `text`, `email`, `password`, `choice`, `datetime` or `info`.
    pub kind: String,
    pub value: Option<String>,
    pub required: bool,
    pub read_only: bool,
    pub help: Option<String>,
    /// (value, label) for a `choice`.
    pub choices: Vec<(String, String)>,
    pub error: Option<String>,
}

/// One prerequisite row of the first page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WizardRow {
    pub id: String,
    pub title: String,
    /// `passed`, `failed` or `pending`.
    pub state: String,
    pub blocking: bool,
    pub detail: String,
    pub fix_location: String,
}

/// The wizard's current page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WizardPage {
    pub page: String,
    pub step: u64,
    pub steps: u64,
    pub title: String,
    pub text: String,
    pub fields: Vec<WizardField>,
    pub rows: Option<Vec<WizardRow>>,
    /// The actions possible now, in menu order.
    pub actions: Vec<WizardAction>,
    pub busy: bool,
    pub busy_text: Option<String>,
    pub error: Option<String>,
    pub error_code: Option<u64>,
    pub notice: Option<String>,
    pub done: bool,
    pub cancelled: bool,
    /// The page as the add-on wrote it.
    pub json: Value,
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

fn opt_text(value: &Value, key: &str) -> Option<String> {
    value[key].as_str().map(str::to_owned)
}

impl WizardPage {
    pub fn from_json(json: Value) -> WizardPage {
        let flag = |key: &str| json["actions"][key].as_bool().unwrap_or(false);
        let actions = WizardAction::ALL
            .into_iter()
            .filter(|a| {
                flag(match a {
                    WizardAction::Next => "next",
                    WizardAction::Back => "back",
                    WizardAction::Cancel => "cancel",
                    WizardAction::Finish => "finish",
                    WizardAction::CreateOnlineId => "create_online_id",
                    WizardAction::Recheck => "recheck",
                })
            })
            .collect();
        let empty = Vec::new();
        let fields = json["fields"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|f| WizardField {
                id: text(f, "id"),
                label: text(f, "label"),
                kind: text(f, "kind"),
                value: opt_text(f, "value"),
                required: f["required"].as_bool().unwrap_or(false),
                read_only: f["read_only"].as_bool().unwrap_or(false),
                help: opt_text(f, "help"),
                choices: f["choices"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|c| (text(c, "value"), text(c, "label")))
                    .collect(),
                error: opt_text(f, "error"),
            })
            .collect();
        let rows = json["rows"].as_array().map(|rows| {
            rows.iter()
                .map(|r| WizardRow {
                    id: text(r, "id"),
                    title: text(r, "title"),
                    state: text(r, "state"),
                    blocking: r["blocking"].as_bool().unwrap_or(false),
                    detail: text(r, "detail"),
                    fix_location: text(r, "fix_location"),
                })
                .collect()
        });
        WizardPage {
            page: text(&json, "page"),
            step: json["step"].as_u64().unwrap_or(0),
            steps: json["steps"].as_u64().unwrap_or(0),
            title: text(&json, "title"),
            text: text(&json, "text"),
            fields,
            rows,
            actions,
            busy: json["busy"].as_bool().unwrap_or(false),
            busy_text: opt_text(&json, "busy_text"),
            error: opt_text(&json, "error"),
            error_code: json["error_code"].as_u64(),
            notice: opt_text(&json, "notice"),
            done: json["done"].as_bool().unwrap_or(false),
            cancelled: json["cancelled"].as_bool().unwrap_or(false),
            json,
        }
    }

    pub fn can(&self, action: WizardAction) -> bool {
        self.actions.contains(&action)
    }

    pub fn field(&self, id: &str) -> Option<&WizardField> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The errors on the page (the page's and the fields'), one per line.
    pub fn errors(&self) -> Vec<String> {
        let mut errors: Vec<String> = self.error.iter().cloned().collect();
        for field in &self.fields {
            if let Some(error) = &field.error {
                errors.push(format!("{}: {error}", field.label));
            }
        }
        errors
    }
}

/// The connect wizard. Each call refuses an add-on whose table does not
/// have the function (before ABI 1.2) in words.
impl Instance<'_> {
    fn wizard_entry<F>(&self, entry: Option<F>) -> Result<F, CallError> {
        entry.ok_or_else(|| CallError {
            code: OD_RESULT_ABI_VERSION,
            message: format!(
                "The Online Desktop add-on {} has no connect wizard (it needs ABI 1.2). \
                 Install the current Online Desktop add-on.",
                self.library().version()
            ),
        })
    }

    /// `od_plugin_wizard_open`.
    pub fn wizard_open(&self) -> Result<(), CallError> {
        let open = self.wizard_entry(self.library().api().plugin_wizard_open)?;
        // SAFETY: live handle.
        self.result(unsafe { open(self.handle()) })
    }

    /// `od_plugin_wizard_open_for`. Connect falls back to
    /// `od_plugin_wizard_open` when the add-on's table has no
    /// `plugin_wizard_open_for` (its `struct_size` does not cover it);
    /// Sync computer is refused before an add-on older than ABI 1.3 sees
    /// a mode it does not know.
    pub fn wizard_open_for(&self, mode: WizardMode) -> Result<(), CallError> {
        let api = self.library().api();
        if mode == WizardMode::SyncComputer && (api.abi_major, api.abi_minor) < (1, 3) {
            return Err(CallError {
                code: OD_RESULT_ABI_VERSION,
                message: format!(
                    "The Online Desktop add-on {} cannot move synchronisation to this computer \
                     (Sync computer needs ABI 1.3; it implements {}.{}). Install the current \
                     Online Desktop add-on.",
                    self.library().version(),
                    api.abi_major,
                    api.abi_minor
                ),
            });
        }
        match (api.plugin_wizard_open_for, mode) {
            (None, WizardMode::Connect) => self.wizard_open(),
            (entry, _) => {
                let open = self.modes_entry(entry)?;
                // SAFETY: live handle.
                self.result(unsafe { open(self.handle(), mode.code()) })
            }
        }
    }

    /// `od_plugin_restore_check`: `Ok` when restoring a backup of the
    /// company database is allowed; else the add-on's reason
    /// (`OD_RESULT_BAD_STATE` while the company is connected here).
    pub fn restore_check(&self) -> Result<(), CallError> {
        let check = self.modes_entry(self.library().api().plugin_restore_check)?;
        // SAFETY: live handle.
        self.result(unsafe { check(self.handle()) })
    }

    fn modes_entry<F>(&self, entry: Option<F>) -> Result<F, CallError> {
        entry.ok_or_else(|| CallError {
            code: OD_RESULT_ABI_VERSION,
            message: format!(
                "The Online Desktop add-on {} cannot update or remove a connection, nor guard a \
                 restore (it needs ABI 1.2 with od_plugin_wizard_open_for and \
                 od_plugin_restore_check). Install the current Online Desktop add-on.",
                self.library().version()
            ),
        })
    }

    /// `od_plugin_wizard_page`, parsed.
    pub fn wizard_page(&self) -> Result<WizardPage, CallError> {
        let api = self.library().api();
        let page = self.wizard_entry(api.plugin_wizard_page)?;
        let free = self.wizard_entry(api.text_free)?;
        let mut out: *mut od_text = std::ptr::null_mut();
        // SAFETY: live handle, writable out-pointer.
        self.result(unsafe { page(self.handle(), &mut out) })?;
        if out.is_null() {
            return Err(CallError {
                code: OD_RESULT_INTERNAL,
                message: "the add-on answered the wizard page call without a text".into(),
            });
        }
        // SAFETY: a valid text from the add-on, `len` bytes at `text`;
        // freed once after the copy.
        let copy = unsafe {
            let t = &*out;
            let copy = if t.text.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(t.text.cast::<u8>(), t.len).to_vec()
            };
            free(out);
            copy
        };
        let json: Value = serde_json::from_slice(&copy).map_err(|e| CallError {
            code: OD_RESULT_INTERNAL,
            message: format!("the add-on's wizard page is not JSON: {e}"),
        })?;
        Ok(WizardPage::from_json(json))
    }

    /// `od_plugin_wizard_set`. A password value is handed over and the
    /// copy here is dropped at once; it is never logged.
    pub fn wizard_set(&self, field: &str, value: &str) -> Result<(), CallError> {
        let set = self.wizard_entry(self.library().api().plugin_wizard_set)?;
        let nul = |_| CallError {
            code: OD_RESULT_INVALID_ARGUMENT,
            message: "the value contains a NUL character".into(),
        };
        let field = CString::new(field).map_err(nul)?;
        let value = CString::new(value).map_err(nul)?;
        // SAFETY: live handle; both strings live for the call (copied).
        let code = unsafe { set(self.handle(), field.as_ptr(), value.as_ptr()) };
        let mut bytes = value.into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        self.result(code)
    }

    /// `od_plugin_wizard_action`; returns at once.
    pub fn wizard_action(&self, action: WizardAction) -> Result<(), CallError> {
        let act = self.wizard_entry(self.library().api().plugin_wizard_action)?;
        // SAFETY: live handle.
        self.result(unsafe { act(self.handle(), action.code()) })
    }

    /// `od_plugin_wizard_close`.
    pub fn wizard_close(&self) -> Result<(), CallError> {
        let close = self.wizard_entry(self.library().api().plugin_wizard_close)?;
        // SAFETY: live handle.
        self.result(unsafe { close(self.handle()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_is_read_from_its_json() {
        let page = WizardPage::from_json(json!({
            "page": "online_id", "step": 3, "steps": 6, "title": "Your Online ID", "text": "a\n\nb",
            "fields": [{"id": "email", "label": "E-mail", "kind": "email", "value": "k@x.no",
                        "required": true, "read_only": false, "help": null, "choices": null, "error": null},
                       {"id": "password", "label": "Password", "kind": "password", "value": "",
                        "required": true, "read_only": false, "help": "h", "choices": null,
                        "error": "wrong"}],
            "rows": null,
            "actions": {"back": true, "next": true, "finish": false, "cancel": true,
                        "create_online_id": true, "recheck": false},
            "busy": false, "busy_text": null, "error": null, "error_code": null,
            "notice": null, "done": false, "cancelled": false
        }));
        assert_eq!(page.step, 3);
        assert_eq!(
            page.actions,
            vec![
                WizardAction::Next,
                WizardAction::CreateOnlineId,
                WizardAction::Back,
                WizardAction::Cancel
            ]
        );
        assert_eq!(
            page.field("email").unwrap().value.as_deref(),
            Some("k@x.no")
        );
        assert_eq!(page.errors(), vec!["Password: wrong".to_owned()]);
        assert!(page.rows.is_none());
    }
}
