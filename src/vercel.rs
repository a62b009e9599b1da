//! The bridge from `vercel_runtime` to our handlers.
//!
//! Handlers never return `Err` to the runtime: it would echo the error's text
//! to the client as unescaped JSON. Everything, including a body that is too
//! large, becomes a response here.

use std::future::Future;

use vercel_runtime::{AppState, Error, Response, ResponseBody};

use crate::web;

/// Serves `handler` the way Vercel runs a Rust function (and, locally, on
/// `127.0.0.1:$VERCEL_DEV_PORT`).
pub async fn serve<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(web::Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = web::Response> + Send + 'static,
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
                        handler(request).await
                    }
                    Err(error) => error.into_response(),
                };
                Ok::<_, Error>(into_vercel(response))
            }
        },
    ))
    .await
}

fn into_vercel(response: web::Response) -> Response<ResponseBody> {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, ResponseBody::from(body))
}
