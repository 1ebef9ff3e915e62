//! The panic guard and error plumbing every export runs through.

use od_abi::*;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A failed call: the code the export returns and the readable message
/// behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfiError {
    pub code: od_result,
    pub message: String,
}

impl FfiError {
    pub fn new(code: od_result, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }

    /// A NULL where a pointer is required.
    pub fn null(argument: &str) -> FfiError {
        FfiError::new(
            OD_RESULT_NULL_ARGUMENT,
            format!("the argument `{argument}` must not be NULL"),
        )
    }
}

pub type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    /// The message of the last failed call without a handle on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    /// The message and place of the last panic on this thread.
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set while an export's body runs, so the panic hook stays quiet there.
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Installs (once) a panic hook that records the message for the guard.
/// Panics outside a guard still go to the previous hook, so this changes
/// nothing for code that is not ours.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(Cell::get) {
                let text = match info.location() {
                    Some(place) => format!("{info} (at {}:{})", place.file(), place.line()),
                    None => info.to_string(),
                };
                PANIC_MESSAGE.with(|slot| *slot.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body`; a panic inside becomes `OD_RESULT_PANIC` with its message.
pub fn catch<T>(export: &'static str, body: impl FnOnce() -> FfiResult<T>) -> FfiResult<T> {
    catch_with(export, true, body)
}

/// [`catch`]; `injectable` says whether the test-only panic injection may
/// fire here (it fires in the guard around the export's own body).
fn catch_with<T>(
    export: &'static str,
    injectable: bool,
    body: impl FnOnce() -> FfiResult<T>,
) -> FfiResult<T> {
    install_panic_hook();
    let outer = IN_GUARD.with(|flag| flag.replace(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "test-panic")]
        if injectable {
            injection::maybe_panic(export);
        }
        #[cfg(not(feature = "test-panic"))]
        let _ = injectable;
        body()
    }));
    IN_GUARD.with(|flag| flag.set(outer));
    match outcome {
        Ok(result) => result,
        Err(_) => {
            let detail = PANIC_MESSAGE
                .with(|slot| slot.borrow_mut().take())
                .unwrap_or_else(|| "unknown".to_owned());
            tracing::error!("internal error in {export}: {detail}");
            Err(FfiError::new(
                OD_RESULT_PANIC,
                format!(
                    "The Online Desktop add-on hit an internal error in {export} and stopped that action; \
                     the program can go on. Please report this to support: {detail}"
                ),
            ))
        }
    }
}

/// Stores the message of a failed call without a handle.
pub fn set_last_error(message: &str) {
    LAST_ERROR.with(|slot| {
        let mut slot = slot.borrow_mut();
        slot.clear();
        slot.push_str(message);
    });
}

pub fn last_error() -> String {
    LAST_ERROR.with(|slot| slot.borrow().clone())
}

/// Runs an export that has no handle: failures are remembered for
/// `od_last_error` on this thread.
pub fn no_handle(export: &'static str, body: impl FnOnce() -> FfiResult<()>) -> od_result {
    remember(catch(export, body))
}

/// The outer guard of an export on a handle: failures to find the handle
/// are remembered like [`no_handle`]'s; the export's body runs in an inner
/// [`catch`] whose failures belong to the handle.
pub fn around_handle(export: &'static str, body: impl FnOnce() -> FfiResult<()>) -> od_result {
    remember(catch_with(export, false, body))
}

/// Runs an export that copies a stored message into the caller's buffer
/// (`od_last_error`, `od_plugin_errmsg`). A message cut to fit is an
/// answer, not a failure to remember: hosts ask for the length with a
/// `(NULL, 0)` buffer and then read, and both calls must see the same
/// message. Other failures are remembered as by [`no_handle`].
pub fn copy_message(export: &'static str, body: impl FnOnce() -> FfiResult<()>) -> od_result {
    match catch(export, body) {
        Err(error) if error.code == OD_RESULT_BUFFER_TOO_SMALL => error.code,
        outcome => remember(outcome),
    }
}

/// The code of a call without a (live) handle; a failure's message is kept
/// for `od_last_error`.
fn remember(outcome: FfiResult<()>) -> od_result {
    match outcome {
        Ok(()) => OD_RESULT_OK,
        Err(error) => {
            set_last_error(&error.message);
            error.code
        }
    }
}

/// Runs an export that cannot report failure (a `void` free function or a
/// value getter): a panic yields `fallback`.
pub fn infallible<T>(export: &'static str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch(export, || Ok(body())).unwrap_or(fallback)
}

#[cfg(feature = "test-panic")]
pub mod injection {
    //! Test-only: make a named export panic, to prove the guard holds.
    use parking_lot::Mutex;

    static TARGET: Mutex<Option<String>> = Mutex::new(None);

    pub fn set(export: Option<String>) {
        *TARGET.lock() = export;
    }

    pub fn maybe_panic(export: &str) {
        if TARGET.lock().as_deref() == Some(export) {
            panic!("injected test panic in {export}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_panic_code_with_its_message() {
        let err = catch::<()>("od_example", || panic!("boom")).unwrap_err();
        assert_eq!(err.code, OD_RESULT_PANIC);
        assert!(
            err.message.contains("boom") && err.message.contains("od_example"),
            "{}",
            err.message
        );
    }

    #[test]
    fn no_handle_failures_are_kept_per_thread() {
        let code = no_handle("od_x", || Err(FfiError::null("out")));
        assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
        assert_eq!(last_error(), "the argument `out` must not be NULL");
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
    }
}
