// The temporary directories tests make are gone when the tests are: a directory for one test after it, pass
// or fail; one for a file or a suite after its last test (as the process exits when none of them ran); and
// the dstack service-kit fixtures (a simulator's socket in each test's directory) leave nothing in the
// temporary directory they were given. Each check looks only at the paths its own run made: other processes
// on the machine make attestmesh-* directories too.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { fileTempDir, testTempDir } from "@attestmesh/shared/testing/tempDir.ts";

const run = promisify(execFile);
const HELPER = new URL("./tempDir.ts", import.meta.url).href;
// A child run by node:test itself reports to this runner instead of to its stdout unless it is told otherwise.
const { NODE_TEST_CONTEXT: _, ...CHILD_ENV } = process.env;

test("testTempDir: the directory holds files while its test runs and is gone, with them, when the test ends", async (t) => {
  let dir = "";
  await t.test("a test writing into its directory", (inner) => {
    dir = testTempDir(inner, "attestmesh-tempdir-test-");
    writeFileSync(join(dir, "state.json"), "{}");
    assert.ok(existsSync(join(dir, "state.json")));
  });
  assert.notEqual(dir, "");
  assert.equal(existsSync(dir), false, `${dir} is left behind`);
});

describe("fileTempDir", () => {
  let dir = "";
  describe("a suite sharing one directory", () => {
    dir = fileTempDir("attestmesh-tempdir-test-");
    test("its first test writes", () => writeFileSync(join(dir, "a"), "a"));
    test("its second test still finds it", () => assert.ok(existsSync(join(dir, "a"))));
  });
  test("after the suite, the directory is gone", () => {
    assert.notEqual(dir, "");
    assert.equal(existsSync(dir), false, `${dir} is left behind`);
  });
});

test("a test run of its own leaves nothing: a failed test's directory, the file's, and that of a suite filtered out by name", async () => {
  // A test file run by the test runner in a child process, so its failure fails nothing here.
  const file = `
    import { describe, test } from "node:test";
    import { fileTempDir, testTempDir } from ${JSON.stringify(HELPER)};
    import { writeFileSync } from "node:fs";
    const shared = fileTempDir("attestmesh-tempdir-test-");
    console.log("file dir " + shared);
    describe("a suite whose tests --test-name-pattern leaves out: its hooks never run", () => {
      console.log("suite dir " + fileTempDir("attestmesh-tempdir-test-"));
      test("not run", () => {});
    });
    test("fails", (t) => {
      const dir = testTempDir(t, "attestmesh-tempdir-test-");
      writeFileSync(dir + "/x", "x");
      writeFileSync(shared + "/y", "y");
      console.log("test dir " + dir);
      throw new Error("deliberately");
    });`;
  const child = await run(
    process.execPath,
    ["--test-name-pattern=^fails$", "--input-type=module", "-e", file],
    {
      env: CHILD_ENV,
    },
  ).then(
    () => assert.fail("the child's test was meant to fail"),
    (error: { code: number; stdout: string }) => error,
  );
  assert.equal(child.code, 1, child.stdout);
  const made = [...child.stdout.matchAll(/^(?:file|suite|test) dir (\S+)$/gm)].map((m) => m[1]!);
  assert.equal(made.length, 3, child.stdout);
  for (const dir of made) assert.equal(existsSync(dir), false, `${dir} is left behind`);
});

test("the dstack evidence and Info fixtures leave nothing in the temporary directory they are given", async () => {
  // TMPDIR points the fixtures' directories (os.tmpdir()) at one made for this run only.
  const root = fileTempDir("attestmesh-tempdir-run-");
  const testFile = new URL("./service/dstack.test.ts", import.meta.url).pathname;
  const { stdout } = await run(
    process.execPath,
    [
      "--test",
      "--test-reporter=tap",
      "--test-name-pattern=reads the compose hash|one guest-agent call",
      testFile,
    ],
    { env: { ...CHILD_ENV, TMPDIR: root } },
  );
  assert.match(stdout, /^# pass 3$/m, "the three tests that make a directory ran and passed");
  assert.deepEqual(readdirSync(root), [], "left in the temporary directory");
});
