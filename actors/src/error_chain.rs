//! How an error reads to a person: the whole `source()` chain on one line, so the cause that
//! explains a failure is never cut off by the wrapper that happened to be on top.
//!
//! # Contract
//!
//! - [`ErrorChain`] prints an error, then each of its sources after `": "`, outermost first:
//!   `ServiceError: client error (Connect): invalid peer certificate: UnknownIssuer`.
//! - A source whose text the line already holds is skipped: wrappers such as kube's
//!   `HyperError: {0}` repeat their source's message, and printing it twice helps nobody.
//! - [`describe_kube_error`] prints an API server's answer (a `Status`) as the server words
//!   it — message, reason and code — instead of kube's `ApiError: … (Status { … })`, which
//!   appends the `Debug` of the whole `Status`; any other kube error gets its chain.
//! - Neither ever prints a credential: errors of kube's client carry none (tokens stay in its
//!   auth layer), and nothing here adds any.
//!
//! # Why not `anyhow`'s `{:#}`
//!
//! It prints the same chain, but only for an `anyhow::Error`; the pipeline's failures come
//! from kube as `kube::Error` and are stored as text in reports, so the chain is written out
//! where the error is first seen. kube's own `Display` stops at the outermost layer: a TLS
//! failure reads "ServiceError: client error (Connect)", the certificate problem is only in
//! the sources (issue 13).

use std::error::Error;
use std::fmt;

/// Displays an error with every source in its chain (see the module docs).
///
/// ```
/// use panoptes_actors::error_chain::ErrorChain;
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let error = Wrapper(refused);
/// assert_eq!(ErrorChain(&error).to_string(), "tcp connect error: connection refused");
///
/// #[derive(Debug)]
/// struct Wrapper(std::io::Error);
/// impl std::fmt::Display for Wrapper {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("tcp connect error")
///     }
/// }
/// impl std::error::Error for Wrapper {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// ```
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(error) = source {
            let text = error.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = error.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `error` with its whole source chain, as one line.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    ErrorChain(error).to_string()
}

/// A kube error as a person should read it: for an answer of the API server, its message
/// with reason and code (`pods is forbidden: User "x" cannot list ... (reason Forbidden,
/// code 403)`); for anything else (connection, TLS, decoding), the whole source chain.
pub fn describe_kube_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => describe_status(status),
        other => error_chain(other),
    }
}

/// A `Status` answer as its server worded it: `message (reason R, code C)`; parts the server
/// left empty are left out.
pub fn describe_status(status: &kube::core::Status) -> String {
    let mut detail = Vec::new();
    if !status.reason.is_empty() {
        detail.push(format!("reason {}", status.reason));
    }
    if status.code != 0 {
        detail.push(format!("code {}", status.code));
    }
    let message = if status.message.is_empty() {
        "the server gave no message"
    } else {
        status.message.as_str()
    };
    if detail.is_empty() {
        message.to_string()
    } else {
        format!("{message} ({})", detail.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer {
        text: &'static str,
        source: Option<Box<dyn Error + 'static>>,
    }

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source.as_deref()
        }
    }

    fn layer(text: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            text,
            source: source.map(|s| Box::new(s) as Box<dyn Error>),
        }
    }

    #[test]
    fn should_print_every_source_outermost_first() {
        let error = layer(
            "ServiceError: client error (Connect)",
            Some(layer(
                "client error (Connect)",
                Some(layer("invalid peer certificate: UnknownIssuer", None)),
            )),
        );
        assert_eq!(
            error_chain(&error),
            "ServiceError: client error (Connect): invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn should_print_a_lone_error_as_it_is() {
        assert_eq!(error_chain(&layer("boom", None)), "boom");
    }

    #[test]
    fn should_word_a_status_as_the_server_did_without_its_debug() {
        let status = kube::core::Status::failure(
            "pods is forbidden: User \"x\" cannot list resource \"pods\"",
            "Forbidden",
        )
        .with_code(403);
        let text = describe_kube_error(&kube::Error::Api(Box::new(status)));
        assert_eq!(
            text,
            "pods is forbidden: User \"x\" cannot list resource \"pods\" (reason Forbidden, code 403)"
        );
        assert!(!text.contains("Status {"));
    }
}
