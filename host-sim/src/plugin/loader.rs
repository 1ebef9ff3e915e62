//! Loading the plugin library exactly as the real host does: open it, look
//! up the one entry point, check the ABI version, take the function table.

use od_abi::*;
use std::ffi::{c_char, CStr};
use std::mem::{offset_of, size_of, MaybeUninit};
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
    #[error(
        "The Online Desktop add-on at {path} (version {version}, ABI {abi}) is too old for synchronisation: \
         it needs ABI 1.1 or newer. Install the current Online Desktop add-on."
    )]
    TooOldForSync {
        path: PathBuf,
        version: String,
        abi: String,
    },
}

/// Size of the plugin's table in ABI 1.0: everything before the first
/// entry ABI 1.1 appended. A smaller table is refused.
const ABI_1_0_TABLE_SIZE: usize = offset_of!(od_plugin_api, plugin_connection_set);

/// Size of the table up to the last synchronisation entry (ABI 1.1).
const SYNC_TABLE_SIZE: usize =
    offset_of!(od_plugin_api, text_free) + size_of::<Option<unsafe extern "C" fn(*mut od_text)>>();

/// The plugin library, loaded, with its function table.
pub struct Library {
    path: PathBuf,
    /// A copy of the plugin's table, as far as its `struct_size` covers
    /// it; the entries it does not cover are `None` (an older plugin).
    api: od_plugin_api,
    /// The plugin's `struct_size`, to tell an older plugin from a
    /// damaged one.
    table_size: usize,
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
        // SAFETY: a non-NULL table from `od_entry` is static while loaded;
        // its first fields (size and versions) exist in every version.
        let (table_size, abi_major, abi_minor) = unsafe {
            let head = api.cast::<u32>();
            (*head as usize, *head.add(1), *head.add(2))
        };
        if abi_major != OD_VERSION_MAJOR || table_size < ABI_1_0_TABLE_SIZE {
            return Err(LoadError::Incompatible {
                path: path.to_path_buf(),
                reason: format!(
                    "it implements ABI {abi_major}.{abi_minor}, this program needs {OD_VERSION_MAJOR}.0 or a newer {OD_VERSION_MAJOR}.x"
                ),
            });
        }
        // Only the entries the plugin's struct_size covers are read (an ABI
        // 1.0 plugin's table ends before the synchronisation entries); the
        // rest of the copy stays zero, which is `None` for every entry.
        let mut copy = MaybeUninit::<od_plugin_api>::zeroed();
        // SAFETY: the plugin's table has `table_size` readable bytes; at
        // most `size_of::<od_plugin_api>()` are copied into `copy`, which
        // is that large. All-zero is a valid `od_plugin_api` (integers and
        // optional function pointers).
        let api = unsafe {
            std::ptr::copy_nonoverlapping(
                api.cast::<u8>(),
                copy.as_mut_ptr().cast::<u8>(),
                table_size.min(size_of::<od_plugin_api>()),
            );
            copy.assume_init()
        };
        Ok(Library {
            path: path.to_path_buf(),
            api,
            table_size,
            _library: library,
        })
    }

    /// Whether the add-on has the synchronisation functions (ABI 1.1).
    pub fn has_sync(&self) -> bool {
        self.table_size >= SYNC_TABLE_SIZE
    }

    /// Refuses an add-on that is too old for synchronisation, with the
    /// reason in words.
    pub fn require_sync(&self) -> Result<(), LoadError> {
        if self.has_sync() {
            Ok(())
        } else {
            Err(LoadError::TooOldForSync {
                path: self.path.clone(),
                version: self.version(),
                abi: format!("{}.{}", self.api.abi_major, self.api.abi_minor),
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's table; entries an older plugin does not have are
    /// `None`. Its function pointers are valid while `self` lives.
    pub(crate) fn api(&self) -> &od_plugin_api {
        &self.api
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
