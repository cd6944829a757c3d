/**
 * Peak resident memory of this process, as Linux reports it.
 *
 * @module
 */

/** Peak RSS in bytes (`VmHWM` of /proc/self/status), or undefined where it is not readable. */
export function peakRssBytes(): number | undefined {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
