//! Where to go after sign-in: only a same-origin relative path is honoured.

use url::Url;

/// `raw` if it is a plain same-origin path (`/x?y#z`), else `/`.
pub fn sanitize_return_to(raw: Option<&str>, app_url: &Url) -> String {
    raw.filter(|path| is_same_origin_path(path, app_url)).map_or_else(|| "/".to_owned(), str::to_owned)
}

fn is_same_origin_path(path: &str, app_url: &Url) -> bool {
    let looks_relative =
        path.starts_with('/') && !path.starts_with("//") && path.len() <= 2048 && !path.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace());
    // Belt and braces: resolved against our origin it must stay on our origin.
    looks_relative && app_url.join(path).is_ok_and(|resolved| resolved.origin() == app_url.origin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitize(raw: &str) -> String {
        sanitize_return_to(Some(raw), &Url::parse("https://app.example.com").unwrap())
    }

    #[test]
    fn same_origin_paths_are_kept() {
        for path in ["/", "/account", "/api-demo?tab=1#top", "/a/b/../c", "/%2F%2Fevil.example"] {
            assert_eq!(sanitize(path), path);
        }
    }

    #[test]
    fn everything_else_goes_home() {
        for hostile in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "/\tevil",
            "/\u{0}x",
            "/ok\r\nSet-Cookie: x=y",
            "",
            "/ //evil",
        ] {
            assert_eq!(sanitize(hostile), "/", "{hostile:?}");
        }
        assert_eq!(sanitize_return_to(None, &Url::parse("https://app.example.com").unwrap()), "/");
    }

    proptest::proptest! {
        /// Whatever arrives, what comes out is a path that stays on our origin.
        #[test]
        fn any_input_gives_a_path_on_our_origin(prefix in proptest::sample::select(vec!["", "/", "//", "/\\", "https://evil.example", "/%2F", "\t/"]), rest in ".*") {
            let app = Url::parse("https://app.example.com").unwrap();
            let raw = format!("{prefix}{rest}");
            let kept = sanitize_return_to(Some(&raw), &app);
            proptest::prop_assert!(kept == "/" || kept == raw);
            proptest::prop_assert!(kept.starts_with('/') && !kept.starts_with("//") && !kept.starts_with("/\\"));
            proptest::prop_assert_eq!(app.join(&kept).unwrap().origin(), app.origin());
        }
    }
}
