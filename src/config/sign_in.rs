//! `SESSION_AUTH` and what each mode needs (`AUTH_SECRET`, `JWT_*`).

use crate::auth::{AuthSecrets, HmacSecret, JwksUrl, JwtSettings, KeySource, SessionAuth};

use super::{ConfigError, Env, non_empty};

impl Env<'_> {
    /// `SESSION_AUTH`, and the variables its mode needs: `AUTH_SECRET` for
    /// `authjs-jwt`; for `jwt`, exactly one of `JWT_JWKS_URL` and `JWT_SECRET`,
    /// `JWT_ISSUER`, `JWT_AUDIENCE` (or `none`), and optionally
    /// `JWT_AUTHORIZED_PARTIES`.
    pub(super) fn session_auth(&mut self) -> Option<SessionAuth> {
        #[derive(Clone, Copy)]
        enum Name {
            Sessions,
            AuthjsDatabase,
            AuthjsJwt,
            Jwt,
        }
        let name = self.optional("SESSION_AUTH", Name::Sessions, |raw| match raw.trim() {
            "sessions" => Ok(Name::Sessions),
            "authjs-database" => Ok(Name::AuthjsDatabase),
            "authjs-jwt" => Ok(Name::AuthjsJwt),
            "jwt" => Ok(Name::Jwt),
            _ => Err(format!(
                "expected sessions, authjs-database, authjs-jwt or jwt, got {raw:?}"
            )),
        })?;
        match name {
            Name::Sessions => Some(SessionAuth::Sessions),
            Name::AuthjsDatabase => Some(SessionAuth::AuthjsDatabase),
            Name::AuthjsJwt => self
                .required("AUTH_SECRET", AuthSecrets::parse)
                .map(SessionAuth::AuthjsJwt),
            Name::Jwt => self.jwt_settings().map(SessionAuth::Jwt),
        }
    }

    fn jwt_settings(&mut self) -> Option<JwtSettings> {
        let jwks = self.optional("JWT_JWKS_URL", None, |raw| JwksUrl::parse(raw).map(Some));
        let secret = self.optional("JWT_SECRET", None, |raw| HmacSecret::parse(raw).map(Some));
        let issuer = self.required("JWT_ISSUER", |raw| non_empty(raw, "the tokens' iss"));
        // Required: a token made for another API of the same provider (every
        // Supabase project's tokens say `authenticated`, every Auth0 API has
        // its own identifier) must not delete accounts here. `none` waives it
        // where the provider issues no `aud` (Clerk, which
        // JWT_AUTHORIZED_PARTIES guards instead).
        let audience = self.required("JWT_AUDIENCE", |raw| match raw.trim() {
            "none" => Ok(None),
            _ => non_empty(
                raw,
                "the tokens' aud, or none where the provider issues none (Clerk)",
            )
            .map(Some),
        });
        let authorized_parties = self.optional("JWT_AUTHORIZED_PARTIES", Vec::new(), |raw| {
            let parties: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|party| !party.is_empty())
                .map(str::to_owned)
                .collect();
            if parties.is_empty() {
                Err("expected comma-separated origins, like https://app.example.com".to_owned())
            } else {
                Ok(parties)
            }
        });
        let keys = match (jwks?, secret?) {
            (Some(url), None) => KeySource::Jwks(url),
            (None, Some(secret)) => KeySource::Secret(secret),
            (None, None) => {
                self.errors.push(ConfigError::Invalid {
                    name: "JWT_JWKS_URL",
                    reason: "SESSION_AUTH=jwt needs the provider's keys: set JWT_JWKS_URL, or \
                             JWT_SECRET for an HS256 shared secret"
                        .to_owned(),
                });
                return None;
            }
            (Some(_), Some(_)) => {
                self.errors.push(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason:
                        "JWT_JWKS_URL and JWT_SECRET are both set; keep the one the provider uses"
                            .to_owned(),
                });
                return None;
            }
        };
        Some(JwtSettings {
            keys,
            issuer: issuer?,
            audience: audience?,
            authorized_parties: authorized_parties?,
        })
    }
}
