//! Strings across the boundary: in, NUL-terminated UTF-8, checked and
//! copied; out, copied into the caller's buffer or owned by an output.

use super::guard::{FfiError, FfiResult};
use od_abi::*;
use std::ffi::{c_char, CStr, CString};

/// Longest path the plugin accepts (Windows' long-path limit, in bytes).
pub(crate) const MAX_PATH_BYTES: usize = 32 * 1024;
/// Longest web address the plugin accepts.
pub(crate) const MAX_URL_BYTES: usize = 2048;

/// Reads an optional string argument (NULL gives None).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn optional(
    ptr: *const c_char,
    argument: &str,
    max_bytes: usize,
) -> FfiResult<Option<String>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.len() > max_bytes {
        return Err(FfiError::new(
            OD_RESULT_STRING_TOO_LONG,
            format!(
                "`{argument}` is {} bytes long; at most {max_bytes} are accepted",
                bytes.len()
            ),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some(text.to_owned())),
        Err(e) => Err(FfiError::new(
            OD_RESULT_INVALID_UTF8,
            format!(
                "`{argument}` is not valid UTF-8 (invalid byte at position {})",
                e.valid_up_to()
            ),
        )),
    }
}

/// A C string for `text`; NUL bytes inside (which C cannot carry) become
/// U+FFFD so that nothing after them is lost.
pub fn to_c(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// Copies `text` with a terminating NUL into `buf` of `buf_size` bytes,
/// truncated at a character boundary when it does not fit, and stores the
/// full length (without NUL) in `out_len` when it is not NULL.
///
/// # Safety
/// `buf` is NULL with `buf_size` 0, or points to `buf_size` writable bytes;
/// `out_len` is NULL or writable.
pub unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    buf_size: usize,
    out_len: *mut usize,
) -> FfiResult<()> {
    if buf.is_null() && buf_size != 0 {
        return Err(FfiError::null("buf"));
    }
    if !out_len.is_null() {
        // SAFETY: the caller guarantees `out_len` is writable.
        unsafe { *out_len = text.len() };
    }
    if buf_size == 0 {
        return if text.is_empty() {
            Ok(())
        } else {
            Err(FfiError::new(
                OD_RESULT_BUFFER_TOO_SMALL,
                "the buffer is empty; `out_len` has the length needed",
            ))
        };
    }
    let mut fit = text.len().min(buf_size - 1);
    while !text.is_char_boundary(fit) {
        fit -= 1;
    }
    // SAFETY: `buf` has `buf_size` > `fit` writable bytes and does not
    // overlap `text`, which the plugin owns.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), fit);
        *buf.add(fit) = 0;
    }
    if fit < text.len() {
        return Err(FfiError::new(
            OD_RESULT_BUFFER_TOO_SMALL,
            "the buffer is too small; the text was cut, and `out_len` has the length needed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_are_checked() {
        let ok = CString::new("Ørsta").unwrap();
        assert_eq!(
            unsafe { optional(ok.as_ptr(), "a", 10) }
                .unwrap()
                .as_deref(),
            Some("Ørsta")
        );
        assert_eq!(
            unsafe { optional(std::ptr::null(), "a", 10) }.unwrap(),
            None
        );
        let bad = CString::new(vec![b'a', 0xff]).unwrap();
        assert_eq!(
            unsafe { optional(bad.as_ptr(), "a", 10) }.unwrap_err().code,
            OD_RESULT_INVALID_UTF8
        );
        let long = CString::new("x".repeat(11)).unwrap();
        assert_eq!(
            unsafe { optional(long.as_ptr(), "a", 10) }
                .unwrap_err()
                .code,
            OD_RESULT_STRING_TOO_LONG
        );
    }

    #[test]
    fn copy_out_truncates_at_a_character_boundary() {
        let mut buf = [1 as c_char; 4];
        let mut len = 0;
        let err = unsafe { copy_out("aøb", buf.as_mut_ptr(), 3, &mut len) }.unwrap_err();
        assert_eq!(err.code, OD_RESULT_BUFFER_TOO_SMALL);
        assert_eq!(len, 4);
        assert_eq!(
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(),
            "a"
        );
        unsafe { copy_out("aøb", buf.as_mut_ptr(), 0, &mut len) }.unwrap_err();
        let mut big = [0 as c_char; 8];
        unsafe { copy_out("aøb", big.as_mut_ptr(), big.len(), std::ptr::null_mut()) }.unwrap();
        assert_eq!(
            unsafe { CStr::from_ptr(big.as_ptr()) }.to_str().unwrap(),
            "aøb"
        );
        assert_eq!(to_c("a\0b").to_str().unwrap(), "a\u{fffd}b");
    }
}
