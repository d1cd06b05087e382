//! The requests a call sends beyond its first: a retry's copy, and an open
//! route's verification probe; and what deciding needs of the request.

use std::time::SystemTime;

use http::{Request, Uri};
use triage_core::Profile;

use crate::route::Breaker;

/// The request again, from its kept head and a copy of its body.
pub(super) fn with_body<B>(head: &Request<()>, body: B) -> Request<B> {
    let (parts, ()) = head.clone().into_parts();
    Request::from_parts(parts, body)
}

/// The verification probe of `head`'s route: the breaker's method and
/// path on the same scheme and authority, with an empty body.
pub(super) fn probe_request<B>(head: &Request<()>, breaker: &Breaker, body: B) -> Request<B> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = head.uri().scheme().cloned();
    parts.authority = head.uri().authority().cloned();
    parts.path_and_query = Some(breaker.probe_path.clone());
    let uri = Uri::from_parts(parts).unwrap_or_else(|_| head.uri().clone());
    let mut request = Request::new(body);
    *request.method_mut() = breaker.probe_method.clone();
    *request.uri_mut() = uri;
    request
}

/// The wall clock, read only when the profile writes absolute reset times
/// (a success's evidence uses it for nothing else).
pub(super) fn wall_clock_for(profile: &Profile) -> SystemTime {
    match profile.reset_format() {
        triage_core::ResetFormat::GoDuration | triage_core::ResetFormat::DeltaSeconds => {
            SystemTime::UNIX_EPOCH
        }
        _ => SystemTime::now(),
    }
}
