/** Thrown by a command that has printed its answer and wants a given exit code, with no error message. */
export class ExitCode extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}
