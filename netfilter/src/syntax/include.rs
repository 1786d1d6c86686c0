//! `include "FILE"`: which files a script may read, and where they are
//! found.
//!
//! Paths resolve exactly as nft 1.0.6 resolves them (measured; not
//! relative to the including file): a path starting with `/` is absolute;
//! one starting with `.` (`./x.nft`, `../x.nft`) is relative to the
//! process's working directory; any other is looked up in the include
//! directories in order (nft's `-I`, by default `/etc`). Wildcards (`*`,
//! `?`, `[...]`) expand to the matching files in alphabetical order,
//! skipping names that start with a dot, and matching nothing is not an
//! error. Includes nest at most 16 deep, as in nft.
//!
//! A resource's `spec.nft` is one self-contained text: [`Includes::Refuse`]
//! is what [`super::compile`] uses, so what a text means never depends on
//! the files of the machine compiling it.

use std::path::{Path, PathBuf};

/// How deep includes may nest (nft's limit).
pub const MAX_DEPTH: usize = 16;

/// What `include` may read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Includes {
    /// No files: an `include` is an error.
    #[default]
    Refuse,
    /// Files, found as nft finds them, looking in these directories for
    /// paths that are neither absolute nor start with `.`.
    Files { dirs: Vec<PathBuf> },
}

impl Includes {
    /// Files as `nft -f` reads them with no `-I`: relative names in `/etc`.
    pub fn nft_default() -> Self {
        Includes::Files {
            dirs: vec![PathBuf::from("/etc")],
        }
    }

    /// The files `include "name"` reads, in order; `Err` says why none.
    pub fn resolve(&self, name: &str) -> Result<Vec<PathBuf>, String> {
        let Includes::Files { dirs } = self else {
            return Err(
                "include is not available here: this text must stand alone (inline the file)"
                    .into(),
            );
        };
        let wild = has_wildcard(name);
        let direct = name.starts_with('/') || name.starts_with('.');
        let bases: Vec<PathBuf> = if direct {
            vec![PathBuf::new()]
        } else {
            dirs.clone()
        };
        for base in &bases {
            let path = base.join(name);
            if wild {
                let found = glob(&path);
                if !found.is_empty() || direct {
                    return Ok(found);
                }
            } else if path.is_file() {
                return Ok(vec![path]);
            }
        }
        if wild {
            Ok(Vec::new())
        } else {
            Err(format!("File not found: {name}"))
        }
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Files matching `pattern` (wildcards in any component), sorted.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    let parts: Vec<_> = pattern.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let text = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &found {
            if !has_wildcard(&text) {
                let p = base.join(part.as_os_str());
                if (last && p.is_file()) || (!last && p.is_dir()) {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && matches(&text, n))
                .collect();
            names.sort();
            for n in names {
                let p = base.join(&n);
                if (last && p.is_file()) || (!last && p.is_dir()) {
                    next.push(p);
                }
            }
        }
        found = next;
    }
    found
}

/// Shell wildcard match of one path component.
fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point for `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() {
            match p[i] {
                '*' => {
                    star = Some((i, j));
                    i += 1;
                    continue;
                }
                '?' => {
                    i += 1;
                    j += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, len)) = class(&p[i..], n[j]) {
                        if ok {
                            i += len;
                            j += 1;
                            continue;
                        }
                    } else if n[j] == '[' {
                        i += 1;
                        j += 1;
                        continue;
                    }
                }
                c if c == n[j] => {
                    i += 1;
                    j += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((si, sj)) => {
                i = si + 1;
                j = sj + 1;
                star = Some((si, sj + 1));
            }
            None => return false,
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// `[abc]`, `[a-z]`, `[!x]` at the start of `p`: whether `c` is in it and
/// the class's length; `None` if unterminated.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut k = 1;
    let neg = matches!(p.get(1), Some('!' | '^'));
    if neg {
        k += 1;
    }
    let mut hit = false;
    let mut first = true;
    while k < p.len() {
        if p[k] == ']' && !first {
            return Some((hit != neg, k + 1));
        }
        if k + 2 < p.len() && p[k + 1] == '-' && p[k + 2] != ']' {
            hit |= p[k] <= c && c <= p[k + 2];
            k += 3;
        } else {
            hit |= p[k] == c;
            k += 1;
        }
        first = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_shell_does() {
        assert!(matches("*.nft", "a.nft"));
        assert!(!matches("*.nft", "a.nftx"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[0-9]*-x", "10-x"));
        assert!(!matches("[!0-9]*", "1a"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXbYbc"));
    }

    #[test]
    fn files_are_found_as_nft_finds_them() {
        let dir = std::env::temp_dir().join(format!("linx-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        for f in ["d/2.nft", "d/1.nft", "d/.hidden.nft", "top.nft"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let inc = Includes::Files {
            dirs: vec![dir.clone()],
        };
        assert_eq!(inc.resolve("top.nft").unwrap(), vec![dir.join("top.nft")]);
        assert_eq!(
            inc.resolve("d/*.nft").unwrap(),
            vec![dir.join("d/1.nft"), dir.join("d/2.nft")]
        );
        assert_eq!(inc.resolve("none/*.nft").unwrap(), Vec::<PathBuf>::new());
        assert_eq!(
            inc.resolve("missing.nft").unwrap_err(),
            "File not found: missing.nft"
        );
        let abs = format!("{}/d/[12].nft", dir.display());
        assert_eq!(inc.resolve(&abs).unwrap().len(), 2);
        assert!(Includes::Refuse.resolve("top.nft").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
