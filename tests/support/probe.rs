//! An SDK interceptor that counts requests per operation and can make a
//! chosen request fail *after* the service has executed it: the client sees
//! a 500, as if the function had crashed between the write and its answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

#[derive(Debug)]
struct Fault {
    operation: String,
    body_contains: Option<String>,
    remaining: u32,
}

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<String, u32>,
    faults: Vec<Fault>,
}

#[derive(Debug, Clone, Default)]
pub struct Probe {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone)]
struct InjectFault(bool);

impl Storable for InjectFault {
    type Storer = StoreReplace<Self>;
}

pub const WRITE_OPERATIONS: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];
pub const READ_OPERATIONS: &[&str] = &["GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"];

impl Probe {
    pub fn counts(&self) -> BTreeMap<String, u32> {
        self.state.lock().expect("probe lock").counts.clone()
    }

    pub fn total(&self, operations: &[&str]) -> u32 {
        let counts = self.counts();
        operations.iter().map(|op| counts.get(*op).copied().unwrap_or(0)).sum()
    }

    pub fn reset(&self) {
        self.state.lock().expect("probe lock").counts.clear();
    }

    /// The next `times` requests of `operation` (whose body contains
    /// `body_contains`, if given) are executed, then answered with a 500.
    pub fn fail_after_execution(&self, operation: &str, body_contains: Option<&str>, times: u32) {
        self.state.lock().expect("probe lock").faults.push(Fault {
            operation: operation.to_owned(),
            body_contains: body_contains.map(str::to_owned),
            remaining: times,
        });
    }
}

impl Intercept for Probe {
    fn name(&self) -> &'static str {
        "jobhook-test-probe"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        let body = context
            .request()
            .body()
            .bytes()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut state = self.state.lock().expect("probe lock");
        *state.counts.entry(operation.clone()).or_default() += 1;
        let fault = state.faults.iter_mut().find(|f| {
            f.remaining > 0 && f.operation == operation && f.body_contains.as_deref().is_none_or(|s| body.contains(s))
        });
        let inject = match fault {
            Some(f) => {
                f.remaining -= 1;
                true
            }
            None => false,
        };
        cfg.interceptor_state().store_put(InjectFault(inject));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<InjectFault>().is_some_and(|f| f.0) {
            let response = context.response_mut();
            *response.status_mut() = StatusCode::try_from(500u16)?;
            response.headers_mut().remove("x-amz-crc32");
            *response.body_mut() = SdkBody::from(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}"#,
            );
        }
        Ok(())
    }
}
