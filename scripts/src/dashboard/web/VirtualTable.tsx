// A table whose rows are rendered only while visible (@tanstack/virtual-core), so 1,000 members or a long
// audit trail cost the same as a screenful. A real <table> (spacer rows above and below the visible ones),
// so screen readers see a table; rows that open something are focusable and answer Enter and Space.

import {
  elementScroll,
  observeElementOffset,
  observeElementRect,
  Virtualizer,
  type VirtualizerOptions,
} from "@tanstack/virtual-core";
import type { ComponentChildren } from "preact";
import { useLayoutEffect, useMemo, useReducer, useRef } from "preact/hooks";

export interface Column<T> {
  readonly title: string;
  readonly width: string;
  readonly cell: (row: T) => ComponentChildren;
}

const ROW_HEIGHT = 30;

export function VirtualTable<T>(props: {
  readonly label: string;
  readonly rows: readonly T[];
  readonly columns: readonly Column<T>[];
  readonly rowKey: (row: T) => string;
  readonly onActivate?: (row: T) => void;
  readonly selected?: string | null;
  readonly height?: number;
  readonly testId?: string;
}) {
  const { rows, columns, rowKey, onActivate } = props;
  const height = props.height ?? 360;
  const scroller = useRef<HTMLDivElement>(null);
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const options = (count: number): VirtualizerOptions<HTMLDivElement, HTMLTableRowElement> => ({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    scrollToFn: elementScroll,
    observeElementRect,
    observeElementOffset,
    onChange: () => rerender(undefined),
    overscan: 8,
    scrollPaddingStart: ROW_HEIGHT,
    initialRect: { width: 800, height },
  });
  const virtualizer = useMemo(() => new Virtualizer(options(rows.length)), []);
  virtualizer.setOptions(options(rows.length));
  useLayoutEffect(() => virtualizer._didMount(), []);
  useLayoutEffect(() => virtualizer._willUpdate());

  const items = virtualizer.getVirtualItems();
  const before = items[0]?.start ?? 0;
  const after = virtualizer.getTotalSize() - (items.at(-1)?.end ?? 0);
  const activate = (row: T) => onActivate?.(row);
  return (
    <div class="vscroll" ref={scroller} style={{ maxHeight: `${height}px` }} data-testid={props.testId}>
      <table class="vtable" aria-label={props.label} aria-rowcount={rows.length + 1}>
        <colgroup>
          {columns.map((c) => (
            <col key={c.title} style={{ width: c.width }} />
          ))}
        </colgroup>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" key={c.title}>
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {before > 0 ? (
            <tr class="spacer" style={{ height: `${before}px` }}>
              <td colSpan={columns.length} />
            </tr>
          ) : null}
          {items.map((item) => {
            const row = rows[item.index]!;
            const key = rowKey(row);
            return (
              <tr
                key={key}
                class={props.selected === key ? "selected" : undefined}
                aria-rowindex={item.index + 2}
                aria-selected={onActivate ? props.selected === key : undefined}
                data-key={key}
                tabIndex={onActivate ? 0 : undefined}
                onClick={onActivate ? () => activate(row) : undefined}
                onKeyDown={
                  onActivate
                    ? (e) => {
                        if (e.key === "Enter" || e.key === " ") {
                          e.preventDefault();
                          activate(row);
                        }
                      }
                    : undefined
                }
              >
                {columns.map((c) => (
                  <td key={c.title}>{c.cell(row)}</td>
                ))}
              </tr>
            );
          })}
          {after > 0 ? (
            <tr class="spacer" style={{ height: `${after}px` }}>
              <td colSpan={columns.length} />
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}
