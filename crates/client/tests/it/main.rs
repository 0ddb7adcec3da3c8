//! Integration tests against a scripted in-process HTTP server.

mod fake;
mod tests_auth;
mod tests_paging;
mod tests_hostile;
mod tests_limits;
mod tests_retry;
