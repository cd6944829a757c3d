/**
 * `/openapi.json` is a valid OpenAPI 3.1 document for third-party tools — `@apidevtools/
 * swagger-parser` and Redocly's recommended rules (`@redocly/openapi-core`, what `redocly lint`
 * runs) — and it describes what the service really sends: a real generation's status JSON,
 * events and error bodies validate against its schemas (ajv, JSON Schema 2020-12).
 */

import assert from "node:assert/strict";
import SwaggerParser from "@apidevtools/swagger-parser";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import { Ajv2020 } from "ajv/dist/2020.js";
import { SseReader } from "./_sse_client.ts";
import { fakeRunner, inputPng, SMALL, testService, upload } from "./_service.ts";

async function documentOf(options: { apiToken?: string } = {}) {
  await using service = await testService({ run: fakeRunner(), startLoop: false, ...options });
  const response = await service.app.request("/openapi.json", {
    headers: options.apiToken ? { Authorization: `Bearer ${options.apiToken}` } : {},
  });
  assert.equal(response.status, 200);
  return await response.json();
}

type Operation = {
  operationId?: string;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
};

function operations(document: { paths: Record<string, Record<string, Operation>> }) {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ path, method, operation }))
  );
}

Deno.test("/openapi.json passes @apidevtools/swagger-parser's validation", async () => {
  const document = await documentOf();
  await SwaggerParser.validate(structuredClone(document));
});

Deno.test("/openapi.json has no error under Redocly's recommended rules, and only the known warnings", async () => {
  const document = await documentOf();
  const problems = await lintFromString({
    source: JSON.stringify(document, null, 2),
    absoluteRef: "/openapi.json",
    config: await createConfig({ extends: ["recommended"] }),
  });
  const said = problems.map((p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer}`);
  assert.deepEqual(said.filter((line) => line.startsWith("error")), []);
  // The project states no license; the probes and the page answer no 4XX of their own.
  assert.deepEqual(said.sort(), [
    "warn info-license #/info",
    "warn operation-4xx-response #/paths/~1/get/responses",
    "warn operation-4xx-response #/paths/~1healthz/get/responses",
    "warn operation-4xx-response #/paths/~1metrics/get/responses",
    "warn operation-4xx-response #/paths/~1readyz/get/responses",
  ]);
});

Deno.test("every operation has an operationId; those behind the token answer 401; id routes 404", async () => {
  const document = await documentOf();
  const ids = new Set<string>();
  for (const { path, method, operation } of operations(document)) {
    const name = `${method.toUpperCase()} ${path}`;
    assert.ok(operation.operationId, `${name} has an operationId`);
    assert.ok(!ids.has(operation.operationId), `${name}'s operationId is unique`);
    ids.add(operation.operationId);
    const open = Array.isArray(operation.security) && operation.security.length === 0;
    if (!open) assert.ok(operation.responses["401"], `${name} documents 401`);
    if (path.includes("{id}")) assert.ok(operation.responses["404"], `${name} documents 404`);
  }
});

Deno.test("the event-stream responses reference the event schemas", async () => {
  const document = await documentOf();
  const streams = operations(document).flatMap(({ operation }) =>
    Object.values(operation.responses).flatMap((response) =>
      Object.entries(response.content ?? {}).filter(([type]) => type === "text/event-stream")
    )
  );
  assert.equal(streams.length, 2, "POST /v1/generations and GET /v1/generations/{id}/events");
  for (const [, media] of streams) {
    assert.deepEqual(media, { schema: { $ref: "#/components/schemas/GenerationEventStream" } });
  }
  const refs = JSON.stringify(document.components.schemas.GenerationEventStream);
  for (
    const name of [
      "QueuedEvent",
      "StartedEvent",
      "StepEvent",
      "DecodingEvent",
      "EncodingEvent",
      "DoneEvent",
      "ErrorEvent",
      "CancelledEvent",
    ]
  ) {
    assert.ok(refs.includes(`#/components/schemas/${name}`), name);
  }
});

Deno.test("what the service sends validates against the document: status, events, errors", async () => {
  const document = await documentOf();
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  ajv.addSchema(document, "api");
  const check = (schema: string, value: unknown) => {
    const validate = ajv.getSchema(`api#/components/schemas/${schema}`)!;
    assert.ok(
      validate(value),
      `${schema}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`,
    );
  };

  await using service = await testService({ run: fakeRunner() });
  const post = (fields: Record<string, string>, accept = "text/event-stream") =>
    inputPng().then((png) =>
      service.app.request("/v1/generations", {
        method: "POST",
        body: upload(png, fields),
        headers: { Accept: accept },
      })
    );
  const streamed = await post({ ...SMALL, crf: "20", keep_running: "true" });
  const id = streamed.headers.get("X-Generation-Id")!;
  const events = await new SseReader(streamed).rest();
  check("GenerationEventStream", events.map(({ id, event, data }) => ({ id, event, data })));
  assert.equal(events.at(-1)?.event, "done");
  check("GenerationStatus", await (await service.app.request(`/v1/generations/${id}`)).json());

  const accepted = await post(SMALL, "application/json");
  assert.equal(accepted.status, 202);
  check("GenerationAccepted", await accepted.json());

  for (const response of [await post({ steps: "0" }), await service.app.request("/nowhere")]) {
    assert.ok(response.status >= 400);
    check("Error", await response.json());
  }

  await using failing = await testService({ run: fakeRunner({ fail: () => new Error("boom") }) });
  const failed = await failing.app.request("/v1/generations", {
    method: "POST",
    body: upload(await inputPng(), SMALL),
    headers: { Accept: "text/event-stream" },
  });
  const failure = await new SseReader(failed).rest();
  assert.equal(failure.at(-1)?.event, "error");
  check("GenerationEventStream", failure.map(({ id, event, data }) => ({ id, event, data })));
});

Deno.test("POST /v1/generations' error responses name every code a submission can get", async () => {
  const document = await documentOf();
  const responses = document.paths["/v1/generations"].post.responses;
  const codes: Record<string, string[]> = {
    408: ["request_timeout"],
    413: ["body_too_large", "image_too_large"],
    415: ["unsupported_content_type", "unsupported_media_type"],
    422: [
      "unknown_field",
      "duplicate_field",
      "missing_field",
      "invalid_parameter",
      "corrupt_image",
      "job_too_large",
    ],
    429: ["queue_full"],
    // model_unavailable: an API-role process whose workers' model is gone or disagrees.
    503: [
      "too_many_uploads",
      "image_check_unavailable",
      "webhook_check_unavailable",
      "shutting_down",
      "store_unavailable",
      "model_unavailable",
    ],
  };
  for (const [status, expected] of Object.entries(codes)) {
    const description: string = responses[status]?.description ?? "";
    const missing = expected.filter((code) => !description.includes(`\`${code}\``));
    assert.deepEqual(missing, [], `${status}: ${description}`);
  }
});
