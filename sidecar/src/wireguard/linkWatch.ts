// Watches for a network interface being deleted, through one long-lived `ip -o monitor link` (netlink
// link events, in the namespace its prefix names). A wireguard-go of our own reports its death itself;
// a kernel interface, or one taken over, deleted from outside would otherwise show only when the next
// operation failed on it. Nothing but the deletion of the one interface named is acted on; a monitor
// that exits by itself is started again after a pause, its ends in a row logged thinned (logRepeats.ts).
import { type ChildProcess, spawn } from "node:child_process";
import type { Socket } from "node:net";
import { createInterface } from "node:readline";
import { createRepeatLog, REPEAT_LOG_NOTE, repeatFields } from "../logRepeats.ts";
import type { WgLogger } from "./process.ts";

/** The pause before a monitor that exited by itself is started again. */
const RESPAWN_MS = 1_000;

export interface LinkWatch {
  /** Stops watching (before this side deletes the interface itself). Idempotent. */
  stop(): void;
}

/** `ip -o monitor link` prints a deletion as `Deleted <index>: <name>[@<link>]: <flags> …`. */
export function deletedLink(line: string): string | undefined {
  return /^Deleted (?:\d+): ([^:@\s]+)[@:]/.exec(line)?.[1];
}

export function watchLinkDeletion(options: {
  /** The monitor's argv before `-o monitor link`, e.g. `ip netns exec <netns> ip`. */
  readonly command: readonly string[];
  readonly name: string;
  readonly logger: WgLogger;
  /** Called at most once, when the interface is deleted. */
  readonly onDeleted: () => void;
  /** The pause before a monitor that exited by itself is started again; default 1 s. */
  readonly respawnMs?: number;
}): LinkWatch {
  const { command, name, logger, respawnMs = RESPAWN_MS } = options;
  let stopped = false;
  let child: ChildProcess | undefined;
  let respawn: NodeJS.Timeout | undefined;
  /** The monitor's ends in a row (one that cannot run: `ip` missing, the namespace gone). */
  const ends = createRepeatLog();

  function start(): void {
    const startedAt = Date.now();
    const monitor = spawn(command[0]!, [...command.slice(1), "-o", "monitor", "link"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    child = monitor;
    // It never keeps the process alive (down() stops it; a process that exits without it leaves it to
    // die on its next write).
    monitor.unref();
    (monitor.stdout as Socket | null)?.unref();
    monitor.on("error", (error) =>
      logger.warn({ name, err: error }, "could not watch the WireGuard interface"),
    );
    createInterface({ input: monitor.stdout! }).on("line", (line) => {
      if (stopped || deletedLink(line) !== name) return;
      stop();
      options.onDeleted();
    });
    monitor.on("close", (code, signal) => {
      if (stopped || child !== monitor) return;
      const repeat = ends.ended(startedAt, Date.now());
      if (repeat.log) {
        logger.warn(
          { name, code, signal, ...repeatFields(repeat) },
          repeat.failures === 1
            ? "the watch on the WireGuard interface ended; starting it again"
            : `the watch on the WireGuard interface ended again; starting it again (such ends in a row are ${REPEAT_LOG_NOTE})`,
        );
      }
      respawn = setTimeout(() => {
        if (!stopped) start();
      }, respawnMs);
      respawn.unref();
    });
  }

  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearTimeout(respawn);
    child?.kill("SIGTERM");
  }

  start();
  return { stop };
}
