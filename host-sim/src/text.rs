//! Turning names into the plain ASCII used in e-mail addresses, web
//! domains and file names.

/// Appends `text` as it would appear in an e-mail address: lower case,
/// Nordic letters spelled out in ASCII, anything else but letters and
/// digits left out.
pub fn push_ascii_lower(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            'æ' | 'Æ' | 'ä' | 'Ä' => out.push_str("ae"),
            'ø' | 'Ø' | 'ö' | 'Ö' => out.push('o'),
            'å' | 'Å' => out.push_str("aa"),
            'é' | 'É' | 'è' | 'È' => out.push('e'),
            'ü' | 'Ü' => out.push('u'),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
}

/// A file-name-safe form of a name: `Nordlys Handel AS` becomes
/// `nordlys-handel-as`. Never empty.
pub fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for word in name.split(|c: char| !c.is_alphanumeric()) {
        let before = slug.len();
        if before > 0 {
            slug.push('-');
        }
        push_ascii_lower(&mut slug, word);
        if slug.len() == before + usize::from(before > 0) {
            slug.truncate(before);
        }
    }
    if slug.is_empty() {
        slug.push_str("company");
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_text_is_plain_ascii() {
        let mut out = String::new();
        push_ascii_lower(&mut out, "Ødegaard Sæther-Å");
        assert_eq!(out, "odegaardsaetheraa");
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Nordlys Handel AS"), "nordlys-handel-as");
        assert_eq!(slug("  Bjørn & Søn  "), "bjorn-son");
        assert_eq!(slug("***"), "company");
    }
}
