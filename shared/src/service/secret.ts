// A box for secret values: the value is reachable only through `reveal()`, and every way a logger,
// JSON.stringify or util.inspect could print the box prints a placeholder instead.
import { inspect } from "node:util";

const PLACEHOLDER = "[secret]";

export interface Secret<T> {
  /** The secret itself; pass it straight to the one call that needs it. */
  reveal(): T;
  toJSON(): string;
  toString(): string;
}

export function secret<T>(value: T): Secret<T> {
  const box = {
    reveal: () => value,
    toJSON: () => PLACEHOLDER,
    toString: () => PLACEHOLDER,
    [inspect.custom]: () => PLACEHOLDER,
  };
  return Object.freeze(box);
}
