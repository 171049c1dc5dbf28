//! The argument codec of the sign-in server functions: a `GET` query string read by
//! name, the first value winning, unknown and repeated keys ignored. Decoding cannot
//! fail, so a hostile callback URL is answered by the flow (with an `auth_error`
//! code), never by a decoder error. (server_fn's `GetUrl` refuses any repeated key.)

use std::collections::HashMap;

/// `GET`, arguments in the query string.
pub struct FirstValueQuery;

impl leptos::server_fn::ContentType for FirstValueQuery {
    const CONTENT_TYPE: &'static str = "application/x-www-form-urlencoded";
}

impl leptos::server_fn::codec::Encoding for FirstValueQuery {
    const METHOD: http::Method = http::Method::GET;
}

/// A query string's parameters; the first value of a repeated key wins, so a repeated
/// parameter cannot override a checked one.
pub struct QueryMap(HashMap<String, String>);

impl QueryMap {
    pub fn parse(query: &str) -> Self {
        let mut map = HashMap::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            map.entry(key.into_owned()).or_insert_with(|| value.into_owned());
        }
        Self(map)
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
}

/// Implements [`FirstValueQuery`] for a server function's argument struct whose
/// fields are all `Option<String>`.
macro_rules! first_value_query {
    ($args:ident { $($field:ident),* }) => {
        impl<E, Request> leptos::server_fn::codec::FromReq<$crate::auth::query::FirstValueQuery, Request, E> for $args
        where
            Request: leptos::server_fn::request::Req<E> + Send + 'static,
            E: leptos::server_fn::error::FromServerFnError,
        {
            async fn from_req(req: Request) -> Result<Self, E> {
                let mut query = $crate::auth::query::QueryMap::parse(req.as_query().unwrap_or_default());
                Ok(Self { $($field: query.take(stringify!($field))),* })
            }
        }

        impl<E, Request> leptos::server_fn::codec::IntoReq<$crate::auth::query::FirstValueQuery, Request, E> for $args
        where
            Request: leptos::server_fn::request::ClientReq<E>,
            E: leptos::server_fn::error::FromServerFnError,
        {
            fn into_req(self, path: &str, accepts: &str) -> Result<Request, E> {
                let mut query = form_urlencoded::Serializer::new(String::new());
                $(if let Some(value) = &self.$field { query.append_pair(stringify!($field), value); })*
                Request::try_new_get(path, <$crate::auth::query::FirstValueQuery as leptos::server_fn::ContentType>::CONTENT_TYPE, accepts, &query.finish())
            }
        }
    };
}
pub(crate) use first_value_query;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_wins_and_nothing_fails() {
        let mut query = QueryMap::parse("state=a&state=b&code=%41&x&=&%zz=1&code=c");
        assert_eq!((query.take("state").as_deref(), query.take("code").as_deref()), (Some("a"), Some("A")));
        assert_eq!(query.take("state"), None);
        QueryMap::parse("%%%&&&==\u{0}");
    }

    proptest::proptest! {
        /// Any query string parses; of repeated keys, the first value is the one taken.
        #[test]
        fn the_first_value_wins(pairs in proptest::collection::vec((".{0,8}", ".{0,16}"), 0..8), junk in ".{0,40}") {
            let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let mut map = QueryMap::parse(&encoded);
            let mut seen = std::collections::HashSet::new();
            for (key, _) in pairs.iter().filter(|(key, _)| seen.insert(key.clone())) {
                let first = pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                proptest::prop_assert_eq!(map.take(key), first);
            }
            QueryMap::parse(&junk);
        }
    }
}
