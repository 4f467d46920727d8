// What of a client's file name and content type reaches URLs and HTTP headers.

/** A readable file name with no path in it: separators become "_", control and format
 * characters (e.g. bidi overrides that disguise an extension) go, no ".." and no leading dot. */
export function safeFilename(name: string): string {
  const s = name
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '')
    .replace(/[/\\]/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[.\s]+/, '')
    .trim();
  const chars = [...s];
  return (chars.length > 200 ? chars.slice(chars.length - 200).join('') : s) || 'file';
}

/** A media type a client may declare (RFC 6838 names, optional parameters), lower-cased; undefined if bad. */
export function parseContentType(s: string): string | undefined {
  const t = s.trim();
  if (t.length > 200 || !/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;\s*[a-z0-9!#$&^_.+-]+=("[^"\\\r\n]*"|[a-z0-9!#$&^_.+-]+))*$/i.test(t)) return undefined;
  return t.toLowerCase();
}

/** The media type without its parameters. */
export const essence = (type: string): string => type.split(';')[0]!.trim().toLowerCase();

/** Types a browser shows inline without running anything; all others are sent as attachments,
 * so an uploaded HTML or SVG page can never run script on the server's origin. */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|bmp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|text\/plain)$/;
export const isInlineSafe = (type: string): boolean => INLINE.test(essence(type));

/** Content-Disposition with the name in both forms (RFC 6266). */
export function disposition(kind: 'inline' | 'attachment', filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())}`;
}
