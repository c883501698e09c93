//! Identifier words: action and resource names split into lower-case words,
//! so keyword rules match whole words ("Delete" in `DeleteBucket`) and not
//! substrings ("login" inside `UpdateLoginProfile` is still the word
//! "login", but "key" no longer matches `monkey`).

/// Splits on every non-alphanumeric character and on camel-case boundaries
/// (`DeleteDBInstance` → delete, db, instance; `user.session.start` → user,
/// session, start), lower-cased. Digits stay with the letters before them.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = chunk.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (prev, cur) = (chars[i - 1], chars[i]);
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            // "aB" starts a word at B; "ABc" starts one at B (DBInstance).
            let boundary = (prev.is_lowercase() && cur.is_uppercase())
                || (prev.is_uppercase() && cur.is_uppercase() && next_is_lower);
            if boundary {
                out.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        if start < chars.len() {
            out.push(chars[start..].iter().collect::<String>().to_lowercase());
        }
    }
    out
}

/// True when `words` contains any of `wanted`.
pub fn any(words: &[String], wanted: &[&str]) -> bool {
    words.iter().any(|w| wanted.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_camel_case_acronyms_and_separators() {
        assert_eq!(words("DeleteDBInstance"), ["delete", "db", "instance"]);
        assert_eq!(words("user.session.start"), ["user", "session", "start"]);
        assert_eq!(
            words("arn:aws:s3:::sensitive-data-bucket/file.pdf"),
            [
                "arn",
                "aws",
                "s3",
                "sensitive",
                "data",
                "bucket",
                "file",
                "pdf"
            ]
        );
        assert_eq!(words("GetObject"), ["get", "object"]);
        assert_eq!(words("S3"), ["s3"]);
        assert!(words("").is_empty());
        assert!(words("::/").is_empty());
    }

    #[test]
    fn any_matches_whole_words_only() {
        let w = words("monkeyBusiness");
        assert!(!any(&w, &["key"]));
        assert!(any(&words("ssh-key"), &["key"]));
    }
}
