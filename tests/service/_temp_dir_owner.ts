/**
 * A service process's stand-in for the temp-folder tests: takes a `ProcessTempDir` in the root
 * given as the first argument, writes a half-encoded clip in a job folder inside it, prints the
 * folder and waits to be killed.
 *
 * @module
 */

import { ProcessTempDir } from "../../pipeline/service/temp_dirs.ts";

const temp = await ProcessTempDir.create(Deno.args[0]);
const job = await Deno.makeTempDir({ dir: temp.path, prefix: "svd_job_" });
await Deno.writeFile(`${job}/clip.mp4.partial.mp4`, new Uint8Array(1024));
console.log(JSON.stringify({ path: temp.path }));
setInterval(() => {}, 1 << 30); // keeps the process (and its lock) until it is killed
