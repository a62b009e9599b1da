//! Watches the mail folder and prints one line per new message: its subject
//! and any link in it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Subject and links of one `.eml` file.
pub fn summarize(eml: &str) -> (String, Vec<String>) {
    let decoded = decode_quoted_printable(eml);
    let subject = eml
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("(no subject)")
        .to_owned();
    let mut links: Vec<String> = decoded
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.replace("&amp;", "&"))
        .collect();
    links.sort();
    links.dedup();
    (subject, links)
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Prints each message that appears in `dir` from now on.
pub async fn watch(dir: PathBuf) {
    let mut seen: HashSet<PathBuf> = eml_files(&dir).into_iter().collect();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for file in eml_files(&dir) {
            if seen.insert(file.clone())
                && let Ok(eml) = std::fs::read_to_string(&file)
            {
                let (subject, links) = summarize(&eml);
                println!("mail: {subject:?} ({})", file.display());
                for link in links {
                    println!("      {link}");
                }
            }
        }
    }
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}
