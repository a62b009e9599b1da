//! What every account route is built the same way by.

/// The constructors every account route has (delete, recover, deletion,
/// restore): from the process environment, with a pool of its own sized
/// for one function instance, or on a pool the host shares between routes
/// (the dev server's embedded database takes a single connection). The
/// route is a struct with one field, `state: Configured<AccountState>`.
macro_rules! account_route {
    ($route:ty, $name:literal) => {
        impl $route {
            #[must_use]
            pub fn from_env() -> Self {
                Self::new($crate::config::AccountConfig::from_env())
            }

            /// The route with a pool of its own, sized for one function instance.
            #[must_use]
            pub fn new(
                config: Result<$crate::config::AccountConfig, $crate::config::ConfigErrors>,
            ) -> Self {
                Self {
                    state: $crate::routes::AccountState::configured($name, config, None),
                }
            }

            /// The route on a pool the host shares between routes.
            #[must_use]
            pub fn with_pool(
                config: Result<$crate::config::AccountConfig, $crate::config::ConfigErrors>,
                pool: sqlx::PgPool,
            ) -> Self {
                Self {
                    state: $crate::routes::AccountState::configured($name, config, Some(pool)),
                }
            }
        }
    };
}
