// The client against the real functions: `ACCOUNT_DELETION_URL` is a
// running `cargo dev` server on a test database (dev/tests/interface.rs
// starts one and runs this). Its `/_dev/seed` signs a user in, as an app's
// sign-in would.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AccountDeletionError, accountDeletion } from "../dist/index.js";

const baseUrl = process.env.ACCOUNT_DELETION_URL;
if (!baseUrl) {
  throw new Error("ACCOUNT_DELETION_URL is not set: run these through dev/tests/interface.rs");
}

async function signIn(email) {
  const query = email ? `?email=${encodeURIComponent(email)}` : "";
  const res = await fetch(`${baseUrl}/_dev/seed${query}`, { method: "POST" });
  assert.equal(res.status, 201);
  return res.json();
}

async function rejects(promise, status, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof AccountDeletionError, String(error));
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    assert.ok(error.message.length > 0);
    return true;
  });
}

test("a user deletes, sees the banner, restores, and asks for a copy of their data", async () => {
  const { email, session_token } = await signIn();
  const client = accountDeletion({ baseUrl, bearer: session_token });

  assert.deepEqual(await client.deletionStatus(), { status: "active" });

  const requested = await client.requestExport();
  assert.ok(Date.parse(requested.expires_at) - Date.parse(requested.requested_at) === 24 * 3600 * 1000);
  await assert.rejects(client.requestExport(), (error) => {
    assert.equal(error.code, "rate_limited");
    assert.equal(error.status, 429);
    assert.ok(error.retryAfterSeconds > 86000, String(error.retryAfterSeconds));
    return true;
  });

  const deleted = await client.deleteAccount();
  assert.ok(Date.parse(deleted.purge_after) > Date.parse(deleted.deleted_at));
  // The deletion signed the user out everywhere.
  await rejects(client.deletionStatus(), 401, "unauthorized");

  const again = accountDeletion({ baseUrl, bearer: (await signIn(email)).session_token });
  const state = await again.deletionStatus();
  assert.equal(state.status, "scheduled");
  assert.equal(state.restorable, true);
  assert.equal(state.purge_after, deleted.purge_after);

  const restored = await again.restoreAccount();
  assert.ok(Date.parse(restored.restored_at) >= Date.parse(deleted.deleted_at));
  await rejects(again.restoreAccount(), 409, "not_deleted");
  assert.deepEqual(await again.deletionStatus(), { status: "active" });
});

test("without a credential every call is refused with a typed error", async () => {
  const client = accountDeletion({ baseUrl });
  await rejects(client.deletionStatus(), 401, "unauthorized");
  await rejects(client.deleteAccount(), 401, "unauthorized");
  await rejects(client.restoreAccount(), 401, "unauthorized");
  await rejects(client.requestExport(), 401, "unauthorized");
});
