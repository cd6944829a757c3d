/**
 * Every surface of a request accepts exactly the same fields and values: for any set of field
 * values (in range, at the edges, out of range, of the wrong type), the HTTP upload parser, the
 * CLI's flags, a config's YAML `sampling` block and `/openapi.json`'s schema (checked with ajv)
 * all accept it, or all refuse it naming the same field. Fields a surface does not have are left
 * out of its comparison (`preview` and `keep_running` are HTTP-only; `crf`, `format` and `size`
 * are not config keys). The demo page's limits are `/openapi.json`'s (demo_page_test.ts).
 */

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { Ajv2020 } from "ajv/dist/2020.js";
import fc from "fast-check";
import { describeError } from "../../functions/errors.ts";
import { parseUpload, type UploadModel } from "../../functions/multipart.ts";
import { ConfigError, parseConfig } from "../../pipeline/config/mod.ts";
import {
  checkFields,
  cliOptions,
  cliRequestInput,
  declarationOf,
  type FieldName,
  fieldsOn,
  jsonSchemaOf,
  ParameterError,
  parseRequest,
  REQUEST_FIELDS,
  type Surface,
} from "../../pipeline/request/mod.ts";
import { fixturePath } from "../_fixtures.ts";
import { bareApp } from "../functions/_bare_app.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY_YAML = await Deno.readTextFile(`${ROOT}configs/tiny.yaml`);
const TINY = parseConfig(TINY_YAML, "configs/tiny.yaml");
const MODEL: UploadModel = { name: TINY.name, sampling: TINY.sampling };
/** The sampling fields as tiny.yaml writes them. */
const TINY_SAMPLING = Object.fromEntries(
  fieldsOn("config").map((name) => [name, TINY.sampling[name as keyof typeof TINY.sampling]]),
) as Partial<Record<FieldName, Value>>;
const IMAGE = await Deno.readFile(fixturePath("input.png"));

/** What a surface made of some field values: accepted, or refused naming a field. */
type Verdict = "accepted" | { refused: string };

/** A typed value, as each surface writes it: text on the wire and the command line, YAML scalars. */
type Value = number | string | boolean;

function byKey(values: Partial<Record<FieldName, Value>>): Record<string, Value> {
  return Object.fromEntries(
    Object.entries(values).map(([name, value]) => [REQUEST_FIELDS[name as FieldName].key, value]),
  );
}

async function http(values: Partial<Record<FieldName, Value>>): Promise<Verdict> {
  const form = new FormData();
  form.append("image", new Blob([IMAGE]), "input.png");
  for (const [key, value] of Object.entries(byKey(values))) form.append(key, String(value));
  const request = new Request("http://svd.test/v1/generations", { method: "POST", body: form });
  try {
    await parseUpload(request, MODEL, { maxPixels: 16e6 });
    return "accepted";
  } catch (error) {
    const wire = describeError(error);
    assert.equal(wire.status, 422, `${wire.code}: ${wire.message}`);
    assert.ok(wire.field, wire.message);
    return { refused: wire.field };
  }
}

/** The CLI's verdict, or undefined for a value a flag cannot carry (a boolean flag takes none). */
function cli(values: Partial<Record<FieldName, Value>>): Verdict | undefined {
  const args: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    const field = declarationOf(name as FieldName);
    const flag = `--${field.key.replaceAll("_", "-")}`;
    if (jsonSchemaOf(field).type !== "boolean") args.push(`${flag}=${value}`);
    else if (typeof value !== "boolean") return undefined;
    else if (value !== field.default) args.push(value ? flag : flag.replace("--", "--no-"));
  }
  const { values: flags } = parseArgs({ args, options: cliOptions(), strict: true });
  try {
    parseRequest(cliRequestInput(flags), {
      surface: "cli",
      model: TINY.name,
      sampling: TINY.sampling,
    });
    return "accepted";
  } catch (error) {
    if (!(error instanceof ParameterError)) throw error;
    return { refused: error.field };
  }
}

function config(values: Partial<Record<FieldName, Value>>): Verdict {
  // configs/tiny.yaml with these keys of its `sampling` block replaced (strings quoted).
  let text = TINY_YAML;
  for (const [key, value] of Object.entries(byKey(values))) {
    const line = `  ${key}: ${typeof value === "string" ? JSON.stringify(value) : value}`;
    text = text.replace(new RegExp(`^  ${key}:.*$`, "m"), "").replace(
      "\nsampling:\n",
      `\nsampling:\n${line}\n`,
    );
  }
  try {
    parseConfig(text, "tiny.yaml");
    return "accepted";
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const field = error.field ?? "";
    assert.ok(field.startsWith("sampling."), error.message);
    return { refused: field.slice("sampling.".length) };
  }
}

/** `/openapi.json`'s upload schema, compiled: it says each field's type and range (not rules). */
async function openApiValidator(): Promise<(values: Record<string, Value>) => Verdict> {
  await using bare = bareApp(MODEL);
  const document = await (await bare.app.request("/openapi.json")).json();
  const properties = document.components.schemas.GenerationUpload.properties;
  const ajv = new Ajv2020({ strict: false, validateFormats: false }); // the patterns say the shape
  const validators = new Map(
    Object.entries(properties).map(([key, schema]) => [key, ajv.compile(schema as object)]),
  );
  return (values) => {
    for (const [key, validate] of validators) {
      if (key in values && !validate(values[key])) return { refused: key };
    }
    return "accepted";
  };
}
const openApi = await openApiValidator();

/** Values around and outside a field's declared range, and of the wrong type. */
function valueOf(name: FieldName): fc.Arbitrary<Value> {
  const schema = jsonSchemaOf(REQUEST_FIELDS[name]);
  const wrong = fc.constantFrom<Value>("lots", "Infinity", "NaN", "1,5", "true", "");
  if (Array.isArray(schema.enum)) {
    return fc.oneof(fc.constantFrom<Value>(...(schema.enum as string[])), wrong);
  }
  if (schema.type === "boolean") return fc.oneof(fc.boolean(), wrong);
  if (schema.type === "array") {
    const items = (schema.items as { enum: string[] }).enum;
    const list = fc.uniqueArray(fc.constantFrom(...items, "finished"), { minLength: 1 })
      .map((values) => values.join(","));
    return fc.oneof(list, wrong);
  }
  if (schema.format === "uri") {
    return fc.oneof(
      fc.constantFrom<Value>(
        "https://hooks.example.com/svd?job=1",
        "http://127.0.0.1:8080/",
        "ftp://hooks.example.com/",
        "hooks.example.com/svd",
        `https://example.com/${"x".repeat(2100)}`,
      ),
      wrong,
    );
  }
  if (schema.type === "string") return fc.oneof(fc.constantFrom<Value>(TINY.name, "svd_xt"), wrong);
  const min = schema.minimum as number;
  const max = schema.maximum as number;
  const edges = fc.constantFrom<Value>(min, max, min - 1, max + 1, (min + max) / 2);
  const integer = fc.integer({ min: min - 100, max: max + 100 });
  const scaled = fc.integer({ min: -3, max: 3 }).map((k) => k * 64 + min);
  const real = fc.double({ min: min - 2, max: max + 2, noNaN: true, noDefaultInfinity: true });
  return fc.oneof(edges, integer, scaled, real, wrong);
}

/** One to three fields with a value each, from those `surfaces` share. */
function fieldValues(surfaces: readonly Surface[]) {
  const names = fieldsOn("http").filter((name) =>
    surfaces.every((surface) => fieldsOn(surface).includes(name))
  );
  return fc.uniqueArray(fc.constantFrom(...names), { minLength: 1, maxLength: 3 }).chain((chosen) =>
    fc.record(Object.fromEntries(chosen.map((name) => [name, valueOf(name)])))
  ) as fc.Arbitrary<Partial<Record<FieldName, Value>>>;
}

/** The values without the blank ones (blank means "the default" on the wire and the CLI). */
function nonBlank(values: Partial<Record<FieldName, Value>>): Partial<Record<FieldName, Value>> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== ""));
}

Deno.test({
  name: "the HTTP upload and the CLI accept the same fields and values, or refuse the same field",
  permissions: { read: true },
  async fn() {
    await fc.assert(
      fc.asyncProperty(fieldValues(["http", "cli"]), async (values) => {
        const verdict = cli(values);
        fc.pre(verdict !== undefined);
        assert.deepEqual(verdict, await http(values), JSON.stringify(values));
      }),
      { numRuns: 300 },
    );
  },
});

Deno.test({
  name:
    "the HTTP upload and a config's sampling block accept the same values, or refuse the same field",
  permissions: { read: true },
  async fn() {
    await fc.assert(
      fc.asyncProperty(fieldValues(["http", "config"]), async (values) => {
        // YAML has no "blank means default": a blank value is left out of both. Every sampling
        // key of the file is written, so the request gives them all too (a rule blames the
        // field written).
        const given = nonBlank(values);
        fc.pre(Object.keys(given).length > 0);
        const written = { ...TINY_SAMPLING, ...given };
        assert.deepEqual(config(given), await http(written), JSON.stringify(given));
      }),
      { numRuns: 300 },
    );
  },
});

Deno.test({
  name: "/openapi.json's upload schema accepts exactly the values each field accepts on its own",
  permissions: { read: true },
  fn() {
    fc.assert(
      fc.property(fieldValues(["http"]), (values) => {
        const given = nonBlank(values);
        fc.pre(Object.keys(given).length > 0);
        // The typed values the document describes (a form sends them as text).
        let fields: Verdict = "accepted";
        try {
          checkFields(byKey(given), "http");
        } catch (error) {
          if (!(error instanceof ParameterError)) throw error;
          fields = { refused: error.field };
        }
        const typed = Object.fromEntries(
          Object.entries(byKey(given)).map(([key, value]) => [key, typedAsParsed(key, value)]),
        );
        assert.deepEqual(openApi(typed), fields, JSON.stringify(given));
      }),
      { numRuns: 500 },
    );
  },
});

/** What the parser makes of `value` before checking it: numbers and booleans read from text. */
function typedAsParsed(key: string, value: Value): Value {
  const name = fieldsOn("http").find((n) => REQUEST_FIELDS[n].key === key)!;
  const type = jsonSchemaOf(REQUEST_FIELDS[name]).type;
  const text = String(value);
  if (
    (type === "integer" || type === "number") && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text)
  ) {
    return Number(text);
  }
  if (type === "boolean" && (text === "true" || text === "false")) return text === "true";
  if (type === "array") {
    return text.split(",").map((item) => item.trim()).filter((item) => item !== "") as never;
  }
  return value;
}

Deno.test({
  name: "every surface lists the fields the declaration gives it",
  permissions: { read: true },
  async fn() {
    const keys = (surface: Surface) => fieldsOn(surface).map((name) => REQUEST_FIELDS[name].key);
    await using bare = bareApp(MODEL);
    const document = await (await bare.app.request("/openapi.json")).json();
    const schemas = document.components.schemas;
    assert.deepEqual(Object.keys(schemas.GenerationUpload.properties), ["image", ...keys("http")]);
    assert.deepEqual(Object.keys(schemas.GenerationParams.properties), keys("http"));
    assert.deepEqual(
      Object.keys(cliOptions()).map((flag) => flag.replace(/^no-/, "").replaceAll("-", "_")),
      keys("cli"),
    );
    assert.deepEqual(
      Object.keys(TINY.sampling).slice(0, keys("config").length).sort(),
      [
        ...fieldsOn("config"),
      ].sort(),
    );
  },
});
