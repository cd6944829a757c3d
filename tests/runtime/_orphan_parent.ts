/**
 * A parent for the orphan test: starts an inference process on the model directory given as the
 * first argument, prints `{"pid": <its pid>}`, optionally holds it in a native call for a minute
 * (`block`, the second argument), and waits to be killed.
 *
 * @module
 */

import { InferenceClient } from "../../pipeline/runtime/mod.ts";

const [modelDir, mode] = Deno.args;
const client = await InferenceClient.start({ modelDir, graphs: ["vae_encoder"] });
if (mode === "block") client.blockForTesting(60);
console.log(JSON.stringify({ pid: client.pid }));
await new Promise(() => {});
