//! Typed HTTP helpers of the tests: one answer type, commands with or without an
//! Idempotency-Key, reads, and the Prometheus metrics of the running app.

use serde_json::Value;

use crate::TestApp;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The answer was replayed from the Idempotency-Key store.
    pub replayed: bool,
}

impl Answer {
    /// The problem type code (`urn:logbook:problem:<code>`), if the body is a problem.
    pub fn problem(&self) -> Option<&str> {
        self.body["type"]
            .as_str()?
            .strip_prefix("urn:logbook:problem:")
    }
}

impl TestApp {
    /// POSTs a command body with a bearer token and, when given, an Idempotency-Key.
    pub async fn command(
        &self,
        token: &str,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        read(request.send().await.expect("request")).await
    }

    /// PUTs a command body with a bearer token.
    pub async fn command_put(&self, token: &str, path: &str, body: &Value) -> Answer {
        let request = self
            .client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body);
        read(request.send().await.expect("request")).await
    }

    /// GETs a path with a bearer token.
    pub async fn read(&self, token: &str, path: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    /// The value of an unlabelled metric (or the sum over its labels) on `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text");
        metric_value(&text, name)
    }
}

/// GETs `path` with a bearer token: the status and the body (JSON, or the text as a string).
pub async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let answer = app.read(token, path).await;
    (answer.status, answer.body)
}

/// The sum of the samples of `name` in a Prometheus text page.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotency-replayed");
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn metric_values_are_summed_over_labels() {
        let text = "# TYPE x gauge\nx 2\nx_total 5\ny{a=\"1\"} 3\ny{a=\"2\"} 4\n";
        assert_eq!(metric_value(text, "x"), Some(2.0));
        assert_eq!(metric_value(text, "y"), Some(7.0));
        assert_eq!(metric_value(text, "z"), None);
    }
}
