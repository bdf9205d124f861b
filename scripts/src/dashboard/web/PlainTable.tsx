// A short table drawn whole, with a row of column titles (the indexers, the drift): long lists, the
// members and the audit trail, use VirtualTable instead.

import type { ComponentChildren } from "preact";

export function PlainTable(props: {
  readonly titles: readonly string[];
  readonly testId?: string;
  /** The body's rows. */
  readonly children: ComponentChildren;
}) {
  return (
    <table class="plain" data-testid={props.testId}>
      <thead>
        <tr>
          {props.titles.map((title) => (
            <th key={title}>{title}</th>
          ))}
        </tr>
      </thead>
      <tbody>{props.children}</tbody>
    </table>
  );
}
