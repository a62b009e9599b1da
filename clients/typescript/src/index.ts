// A typed client for the account-deletion functions, for an app's frontend
// (the delete button, the "restore?" banner, "download your data") and its
// backend. Types come from openapi.yaml (src/schema.d.ts, generated).

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

export type Deleted = Schemas["DeletionAccepted"];
export type DeletionState = Schemas["DeletionState"];
export type Restored = Schemas["Restored"];
export type ExportRequested = Schemas["ExportRequested"];

/** Every error the functions answer: its status, its stable code, and
 * when to retry (`Retry-After`, seconds) where the answer says. */
export class AccountDeletionError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, code: string, message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "AccountDeletionError";
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface ClientOptions {
  /** Where the functions are served: the app's own origin (`""` or
   * `https://app.example.com`) or the deployment's. */
  baseUrl: string;
  /** A bearer credential: the session token or the provider's JWT. Leave
   * it out to sign in with the session cookie. */
  bearer?: string;
  /** `include` sends the session cookie to another origin. Default
   * `same-origin`. */
  credentials?: RequestCredentials;
  /** A fetch of your own (tests, server-side rendering). */
  fetch?: typeof globalThis.fetch;
}

export interface AccountDeletionClient {
  /** `POST /api/account/delete`: soft-deletes the signed-in user's account. */
  deleteAccount(): Promise<Deleted>;
  /** `GET /api/account/deletion`: the banner's state. */
  deletionStatus(): Promise<DeletionState>;
  /** `POST /api/account/restore`: restores the signed-in user's account. */
  restoreAccount(): Promise<Restored>;
  /** `POST /api/account/export`: emails the user a link to a copy of their data. */
  requestExport(): Promise<ExportRequested>;
}

/** The client, for one signed-in user. */
export function accountDeletion(options: ClientOptions): AccountDeletionClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    credentials: options.credentials ?? "same-origin",
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.bearer ? { headers: { Authorization: `Bearer ${options.bearer}` } } : {}),
  });
  return {
    deleteAccount: async () => answer(await client.POST("/api/account/delete")),
    deletionStatus: async () => answer(await client.GET("/api/account/deletion")),
    restoreAccount: async () => answer(await client.POST("/api/account/restore")),
    requestExport: async () => {
      const answered = await client.POST("/api/account/export", {});
      // 202 answers the signed-in request; 200 (the archive) answers a
      // link's token, which this call never sends.
      const data = answered.response.status === 202 ? (answered.data as ExportRequested) : undefined;
      return answer<ExportRequested>({ ...answered, data });
    },
  };
}

interface Answered<T> {
  data?: T | undefined;
  error?: unknown;
  response: Response;
}

/** The answer's body, or its error thrown as an AccountDeletionError. */
function answer<T>(answered: Answered<T>): T {
  const { data, error, response } = answered;
  if (response.ok && data !== undefined) {
    return data;
  }
  const body = (error ?? {}) as { error?: unknown; message?: unknown };
  const retryAfter = response.headers.get("Retry-After");
  throw new AccountDeletionError(
    response.status,
    typeof body.error === "string" ? body.error : `http_${response.status}`,
    typeof body.message === "string" ? body.message : response.statusText,
    retryAfter === null ? undefined : Number(retryAfter),
  );
}
