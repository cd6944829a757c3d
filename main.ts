/**
 * The project's main job. Until the HTTP function lands this is the converter; `deno task start`
 * takes the converter's arguments.
 *
 * @module
 */

import { main } from "./pipeline/cli/convert.ts";
import { runCli } from "./pipeline/cli/run_cli.ts";

if (import.meta.main) await runCli(main);
