// Small display helpers for the page.

/** Wei (decimal string) as ETH with up to 6 decimals. */
export function formatEth(wei: string): string {
  const value = BigInt(wei);
  const whole = value / 10n ** 18n;
  const frac = ((value % 10n ** 18n) / 10n ** 12n).toString().padStart(6, "0").replace(/0+$/, "");
  return `${whole}${frac === "" ? "" : `.${frac}`} ETH`;
}

/** Wei as a float in ETH, for charts only. */
export const ethNumber = (wei: string): number => Number(BigInt(wei) / 10n ** 9n) / 1e9;

export const short = (hex: string, keep = 6): string =>
  hex.length <= 2 + keep * 2 ? hex : `${hex.slice(0, 2 + keep)}…${hex.slice(-keep)}`;

export function when(isoTime: string | null): string {
  if (isoTime === null) return "—";
  return isoTime.replace("T", " ").replace(/\.\d+Z$/, "Z");
}
