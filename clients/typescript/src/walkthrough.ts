// The README's data API walkthrough, with a client typed from the served
// /v1/openapi.json (src/generated/strata.d.ts, made by `npm run generate`).
// Every step asserts what it got; the first failed assertion ends the run
// with exit code 1. Settings: DATA_API_URL (default http://127.0.0.1:8080),
// DATA_API_TOKEN (a service token) and DATA_API_TENANT (its tenant's ref).
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/strata.js";

type Problem = components["schemas"]["Problem"];

function setting(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set`);
  }
  return value;
}

function check(condition: boolean, what: string, got?: unknown): asserts condition {
  if (!condition) {
    throw new Error(`${what}; got ${JSON.stringify(got)}`);
  }
  console.log(`ok: ${what}`);
}

function checkProblem(error: Problem | undefined, status: number, code: string): Problem {
  check(error !== undefined, `a ${status} problem`, error);
  check(error.status === status && error.code === code, `${status} ${code}`, error);
  return error;
}

const baseUrl = setting("DATA_API_URL", "http://127.0.0.1:8080");
const tenantRef = setting("DATA_API_TENANT");
const client = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${setting("DATA_API_TOKEN")}` },
});
const collection = "/v1/tenants/{tenantRef}/activities" as const;
const record = "/v1/tenants/{tenantRef}/activities/{ref}" as const;

// create: 201 with Location and ETag
const created = await client.POST(collection, {
  params: { path: { tenantRef } },
  body: { kind: "blog" },
});
check(created.response.status === 201, "create: 201", created.error);
check(created.data !== undefined && created.data.status === "queued", "created queued", created.data);
const ref = created.data.ref;
check(
  created.response.headers.get("Location") === `/v1/tenants/${tenantRef}/activities/${ref}`,
  "create: Location names the activity",
  created.response.headers.get("Location"),
);
check(created.response.headers.get("ETag") !== null, "create: an ETag");

// get, keeping the ETag for the update
const got = await client.GET(record, { params: { path: { tenantRef, ref } } });
check(got.data?.ref === ref && got.data.kind === "blog", "get: the activity", got.data);
const etag = got.response.headers.get("ETag");
check(etag !== null, "get: an ETag");

// list: one page with it
const listed = await client.GET(collection, {
  params: { path: { tenantRef }, query: { limit: 10 } },
});
check(listed.data?.items.some((a) => a.ref === ref) === true, "list: contains it", listed.data);

// update with If-Match: 200, a new ETag
const updated = await client.PATCH(record, {
  params: { path: { tenantRef, ref }, header: { "If-Match": etag } },
  body: { kind: "blog-post" },
});
check(updated.data?.kind === "blog-post", "update: the new kind", updated.error ?? updated.data);
const newEtag = updated.response.headers.get("ETag");
check(newEtag !== null && newEtag !== etag, "update: a new ETag", newEtag);

// the old ETag again is stale: 412
const stale = await client.PATCH(record, {
  params: { path: { tenantRef, ref }, header: { "If-Match": etag } },
  body: { kind: "blog" },
});
check(stale.response.status === 412, "stale If-Match: 412", stale.response.status);
checkProblem(stale.error, 412, "precondition_failed");

// transitions: queued → running (200)
const running = await client.POST(`${record}/transitions`, {
  params: { path: { tenantRef, ref } },
  body: { to: "running" },
});
check(running.data?.status === "running", "transition to running", running.error ?? running.data);

// running → queued is illegal: 409 with the current and the allowed states
const illegal = await client.POST(`${record}/transitions`, {
  params: { path: { tenantRef, ref } },
  body: { to: "queued" },
});
check(illegal.response.status === 409, "illegal transition: 409", illegal.response.status);
const refused = checkProblem(illegal.error, 409, "illegal_transition");
check(refused.currentState === "running", "currentState running", refused.currentState);
check(
  refused.allowedStates?.includes("succeeded") === true && !refused.allowedStates.includes("queued"),
  "allowedStates without queued",
  refused.allowedStates,
);

// list filtered by status
const runningList = await client.GET(collection, {
  params: { path: { tenantRef }, query: { limit: 10, status: "running" } },
});
check(
  runningList.data?.items.map((a) => a.ref).join() === ref,
  "list status=running: only it",
  runningList.data,
);

// soft delete: 204, then 404
const deleted = await client.DELETE(record, { params: { path: { tenantRef, ref } } });
check(deleted.response.status === 204, "delete: 204", deleted.response.status);
const gone = await client.GET(record, { params: { path: { tenantRef, ref } } });
check(gone.response.status === 404, "get after delete: 404", gone.response.status);
checkProblem(gone.error, 404, "not_found");

console.log(`walkthrough done: activity ${ref}`);
