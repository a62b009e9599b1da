//! The bridge from `vercel_runtime` to our handlers.
//!
//! Handlers never return `Err` to the runtime: it would echo the error's text
//! to the client as unescaped JSON. Everything, including a body that is too
//! large, becomes a response here.

use std::future::Future;

use vercel_runtime::{AppState, Error, Response, ResponseBody};

use crate::platform::web;

/// Serves `handler` the way Vercel runs a Rust function (and, locally, on
/// `127.0.0.1:$VERCEL_DEV_PORT`).
pub async fn serve<F, Fut, R>(handler: F) -> Result<(), Error>
where
    F: Fn(web::Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: Into<web::Reply>,
{
    vercel_runtime::run(vercel_runtime::service_fn(
        move |request: vercel_runtime::Request, state: AppState| {
            let handler = handler.clone();
            async move {
                let response = match web::read_limited(request).await {
                    Ok(mut request) => {
                        request
                            .extensions_mut()
                            .insert(web::Background::new(move |task| {
                                state.wait_until(task);
                            }));
                        handler(request).await.into()
                    }
                    Err(error) => error.into_response().into(),
                };
                Ok::<_, Error>(into_vercel(response))
            }
        },
    ))
    .await
}

/// A streamed body goes to hyper as it is: `vercel_runtime`'s own axum
/// layer would buffer it (it streams only JSON and event streams).
fn into_vercel(reply: web::Reply) -> Response<ResponseBody> {
    match reply {
        web::Reply::Whole(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, ResponseBody::from(body))
        }
        web::Reply::Streamed(response) => {
            let (parts, body) = response.into_parts();
            let body = http_body_util::BodyExt::map_err(body, |torn| Box::new(torn) as Error);
            Response::from_parts(parts, ResponseBody(http_body_util::BodyExt::boxed(body)))
        }
    }
}
