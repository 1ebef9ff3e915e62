//! Loading the plugin library exactly as the real host does: open it, look
//! up the one entry point, check the ABI version, take the function table.

use od_abi::*;
use std::ffi::{c_char, CStr};
use std::mem::size_of;
use std::path::{Path, PathBuf};

/// Environment variable naming the plugin library.
pub const PLUGIN_ENV: &str = "OD_PLUGIN_PATH";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "The Online Desktop add-on was not found at {path}.\n\
         Build it with `cargo build -p online-desktop`, or say where it is with --plugin or {PLUGIN_ENV}."
    )]
    Missing { path: PathBuf },
    #[error("The Online Desktop add-on could not be loaded from {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} is not an Online Desktop add-on (it has no entry point `od_entry`).")]
    NoEntryPoint { path: PathBuf },
    #[error(
        "The Online Desktop add-on at {path} is not compatible with this program: {reason}\n\
         Install the add-on version made for this program."
    )]
    Incompatible { path: PathBuf, reason: String },
}

/// The plugin library, loaded, with its function table.
pub struct Library {
    path: PathBuf,
    api: *const od_plugin_api,
    // Dropped last: unloads the library. Every instance borrows `self`, so
    // none can outlive it.
    _library: libloading::Library,
}

impl Library {
    /// The library built in this workspace: the newest build next to this
    /// program, one folder up (for test programs), or in `deps/` (where
    /// `cargo test` puts it).
    pub fn default_path() -> PathBuf {
        let name = libloading::library_filename("online_desktop");
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut candidates = vec![dir.join(&name), dir.join("deps").join(&name)];
        if let Some(up) = dir.parent() {
            candidates.push(up.join(&name));
        }
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        candidates
            .iter()
            .filter_map(|p| Some((modified(p)?, p)))
            .max_by_key(|(time, _)| *time)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| candidates[0].clone())
    }

    /// The path from the flag, else the environment, else the default.
    pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(PLUGIN_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(Library::default_path)
    }

    pub fn load(path: &Path) -> Result<Library, LoadError> {
        if !path.is_file() {
            return Err(LoadError::Missing {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: loading runs the library's initialisers; the Online
        // Desktop plugin has none that do work (STYLE.md: loading does no
        // work), and a foreign library is refused below before any call.
        let library = unsafe { libloading::Library::new(path) }.map_err(|e| LoadError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        // SAFETY: the symbol's type is the documented `od_entry_fn`.
        let entry: od_entry_fn = match unsafe { library.get::<od_entry_fn>(b"od_entry\0") } {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(LoadError::NoEntryPoint {
                    path: path.to_path_buf(),
                })
            }
        };
        let mut api: *const od_plugin_api = std::ptr::null();
        // SAFETY: `entry` is the plugin's entry point; `api` is writable.
        let code = unsafe { entry(OD_VERSION_MAJOR, OD_VERSION_MINOR, &mut api) };
        if code != OD_RESULT_OK || api.is_null() {
            let reason = last_error(&library)
                .unwrap_or_else(|| format!("its entry point refused this program's ABI {OD_VERSION_MAJOR}.{OD_VERSION_MINOR} (code {code})"));
            return Err(LoadError::Incompatible {
                path: path.to_path_buf(),
                reason,
            });
        }
        // SAFETY: a non-NULL table from `od_entry` is static while loaded.
        let table = unsafe { &*api };
        if table.abi_major != OD_VERSION_MAJOR
            || (table.struct_size as usize) < size_of::<od_plugin_api>()
        {
            return Err(LoadError::Incompatible {
                path: path.to_path_buf(),
                reason: format!(
                    "it implements ABI {}.{}, this program needs {OD_VERSION_MAJOR}.{OD_VERSION_MINOR} or newer",
                    table.abi_major, table.abi_minor
                ),
            });
        }
        Ok(Library {
            path: path.to_path_buf(),
            api,
            _library: library,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn api(&self) -> &od_plugin_api {
        // SAFETY: checked at load; static while the library is loaded,
        // which `&self` guarantees.
        unsafe { &*self.api }
    }

    /// The plugin's version, e.g. "1.0.0".
    pub fn version(&self) -> String {
        match self.api().version_string {
            // SAFETY: returns a static NUL-terminated string.
            Some(f) => unsafe { c_text(f()) },
            None => String::new(),
        }
    }

    /// The message of the last failed call without a handle on this thread.
    pub(crate) fn last_error_message(&self) -> String {
        let Some(f) = self.api().last_error else {
            return String::new();
        };
        read_message(|buf, size, len| {
            // SAFETY: buf has `size` writable bytes; len is writable.
            unsafe { f(buf, size, len) }
        })
    }
}

/// Reads `od_last_error` straight from the library, before a table exists.
fn last_error(library: &libloading::Library) -> Option<String> {
    type LastError = unsafe extern "C" fn(*mut c_char, usize, *mut usize) -> od_result;
    // SAFETY: the symbol's type is the documented one.
    let f = unsafe { library.get::<LastError>(b"od_last_error\0") }.ok()?;
    let text = read_message(|buf, size, len| {
        // SAFETY: buf has `size` writable bytes; len is writable.
        unsafe { f(buf, size, len) }
    });
    (!text.is_empty()).then_some(text)
}

/// Calls a "copy the message into my buffer" function, growing the buffer
/// once if the message did not fit.
pub(crate) fn read_message(
    mut f: impl FnMut(*mut c_char, usize, *mut usize) -> od_result,
) -> String {
    let mut size = 512;
    for _ in 0..2 {
        let mut buf = vec![0 as c_char; size];
        let mut len = 0usize;
        let code = f(buf.as_mut_ptr(), buf.len(), &mut len);
        if code == OD_RESULT_OK {
            // SAFETY: the plugin wrote a NUL-terminated string into buf.
            return unsafe { c_text(buf.as_ptr()) };
        }
        if code != OD_RESULT_BUFFER_TOO_SMALL {
            return String::new();
        }
        size = len + 1;
    }
    String::new()
}

/// Copies a C string the plugin owns (NULL gives "").
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn c_text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        // SAFETY: the caller guarantees a NUL-terminated string.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }
}
