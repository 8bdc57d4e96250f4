// `Intl`, the basics, for an engine built without it (StarlingMonkey has no
// ICU): `NumberFormat`, `DateTimeFormat`, `PluralRules`, `Collator` and
// `getCanonicalLocales`, in the `en-US` locale and the `UTC` time zone only,
// whatever is asked (`resolvedOptions()` says so). Another time zone is a
// RangeError that says why, rather than a silently wrong hour. Installed by
// globals.js only when the engine has no `Intl` of its own.

const LOCALE = 'en-US';
const CURRENCY_SYMBOLS = { USD: '$', EUR: '€', GBP: '£', JPY: '¥', CNY: 'CN¥', INR: '₹', CAD: 'CA$', AUD: 'A$' };

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

class NumberFormat {
  #o;
  constructor(_locales, options = {}) {
    const style = options.style ?? 'decimal';
    if (!['decimal', 'percent', 'currency', 'unit'].includes(style)) throw new RangeError(`Intl.NumberFormat: style ${style} is not supported`);
    if (style === 'currency' && typeof options.currency !== 'string') throw new TypeError('Intl.NumberFormat: currency style needs a currency code');
    const currency = options.currency?.toUpperCase();
    const defaultMax = style === 'currency' ? (currency === 'JPY' ? 0 : 2) : style === 'percent' ? 0 : 3;
    const defaultMin = style === 'currency' ? defaultMax : 0;
    const min = options.minimumFractionDigits ?? Math.min(defaultMin, options.maximumFractionDigits ?? defaultMin);
    const max = Math.max(min, options.maximumFractionDigits ?? Math.max(defaultMax, min));
    this.#o = { locale: LOCALE, numberingSystem: 'latn', style, currency, unit: options.unit, minimumFractionDigits: min, maximumFractionDigits: max, useGrouping: options.useGrouping !== false, signDisplay: options.signDisplay ?? 'auto' };
  }
  format(value) {
    const o = this.#o;
    let n = typeof value === 'bigint' ? Number(value) : Number(value);
    if (Number.isNaN(n)) return 'NaN';
    if (o.style === 'percent') n *= 100;
    const negative = n < 0 || Object.is(n, -0);
    if (!Number.isFinite(n)) return `${negative ? '-' : ''}∞`;
    let [int, frac = ''] = Math.abs(n).toFixed(o.maximumFractionDigits).split('.');
    frac = frac.replace(/0+$/, '').padEnd(o.minimumFractionDigits, '0');
    const body = (o.useGrouping ? group(int) : int) + (frac ? `.${frac}` : '');
    const sign = negative && Number(body.replace(/[,.]/g, '')) !== 0 ? '-' : o.signDisplay === 'always' ? '+' : '';
    if (o.style === 'percent') return `${sign}${body}%`;
    if (o.style === 'currency') {
      const symbol = CURRENCY_SYMBOLS[o.currency];
      return symbol ? `${sign}${symbol}${body}` : `${sign}${o.currency}\u00a0${body}`;
    }
    if (o.style === 'unit' && o.unit) return `${sign}${body} ${o.unit}`;
    return sign + body;
  }
  formatToParts(value) {
    return [{ type: 'literal', value: this.format(value) }];
  }
  resolvedOptions() {
    return { ...this.#o };
  }
  static supportedLocalesOf() {
    return [LOCALE];
  }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const FIELDS = ['weekday', 'year', 'month', 'day', 'hour', 'minute', 'second'];

function checkTimeZone(timeZone) {
  if (timeZone === undefined) return 'UTC';
  const upper = String(timeZone).toUpperCase();
  if (upper === 'UTC' || upper === 'ETC/UTC' || upper === 'GMT' || upper === 'ETC/GMT') return 'UTC';
  throw new RangeError(`Intl.DateTimeFormat: time zone ${timeZone} is not supported on dohost (its Intl knows UTC only)`);
}

class DateTimeFormat {
  #o;
  constructor(_locales, options = {}) {
    const asked = FIELDS.filter((f) => options[f] !== undefined);
    const style = options.dateStyle || options.timeStyle;
    const fields = asked.length || style ? Object.fromEntries(asked.map((f) => [f, options[f]])) : { year: 'numeric', month: 'numeric', day: 'numeric' };
    if (options.dateStyle) Object.assign(fields, { year: options.dateStyle === 'short' ? '2-digit' : 'numeric', month: options.dateStyle === 'short' ? 'numeric' : options.dateStyle === 'medium' ? 'short' : 'long', day: 'numeric' }, options.dateStyle === 'full' ? { weekday: 'long' } : {});
    if (options.timeStyle) Object.assign(fields, { hour: 'numeric', minute: '2-digit' }, options.timeStyle === 'short' ? {} : { second: '2-digit' });
    this.#o = { locale: LOCALE, calendar: 'gregory', numberingSystem: 'latn', timeZone: checkTimeZone(options.timeZone), hour12: options.hour12 ?? options.hourCycle !== 'h23', ...fields };
  }
  format(date = Date.now()) {
    return this.formatToParts(date).map((p) => p.value).join('');
  }
  formatToParts(date = Date.now()) {
    const d = date instanceof Date ? date : new Date(date);
    if (Number.isNaN(d.getTime())) throw new RangeError('Invalid time value');
    const o = this.#o;
    const two = (n) => String(n).padStart(2, '0');
    const parts = [];
    const add = (type, value) => parts.push({ type, value: String(value) });
    const lit = (value) => parts.push({ type: 'literal', value });
    if (o.weekday) {
      const day = DAYS[d.getUTCDay()];
      add('weekday', o.weekday === 'long' ? day : day.slice(0, o.weekday === 'narrow' ? 1 : 3));
      if (o.year || o.month || o.day) lit(', ');
    }
    const wordMonth = o.month === 'long' || o.month === 'short' || o.month === 'narrow';
    if (wordMonth) {
      const month = MONTHS[d.getUTCMonth()];
      add('month', o.month === 'long' ? month : month.slice(0, o.month === 'narrow' ? 1 : 3));
      if (o.day) lit(' '), add('day', o.day === '2-digit' ? two(d.getUTCDate()) : d.getUTCDate());
      if (o.year) lit(o.day ? ', ' : ' '), add('year', d.getUTCFullYear());
    } else {
      const numeric = [];
      if (o.month) numeric.push(['month', o.month === '2-digit' ? two(d.getUTCMonth() + 1) : d.getUTCMonth() + 1]);
      if (o.day) numeric.push(['day', o.day === '2-digit' ? two(d.getUTCDate()) : d.getUTCDate()]);
      if (o.year) numeric.push(['year', o.year === '2-digit' ? two(d.getUTCFullYear() % 100) : d.getUTCFullYear()]);
      numeric.forEach(([type, value], i) => (i && lit('/'), add(type, value)));
    }
    if (o.hour || o.minute || o.second) {
      if (parts.length) lit(', ');
      const h = d.getUTCHours();
      if (o.hour) add('hour', o.hour12 ? h % 12 || 12 : o.hour === '2-digit' ? two(h) : h);
      if (o.minute) (o.hour && lit(':'), add('minute', two(d.getUTCMinutes())));
      if (o.second) (lit(':'), add('second', two(d.getUTCSeconds())));
      if (o.hour && o.hour12) lit(' '), add('dayPeriod', h < 12 ? 'AM' : 'PM');
    }
    return parts;
  }
  formatRange(a, b) {
    return `${this.format(a)} – ${this.format(b)}`;
  }
  resolvedOptions() {
    return { ...this.#o };
  }
  static supportedLocalesOf() {
    return [LOCALE];
  }
}

class PluralRules {
  #type;
  constructor(_locales, options = {}) {
    this.#type = options.type ?? 'cardinal';
  }
  select(n) {
    if (this.#type === 'ordinal') {
      const ten = n % 10;
      const hundred = n % 100;
      if (ten === 1 && hundred !== 11) return 'one';
      if (ten === 2 && hundred !== 12) return 'two';
      if (ten === 3 && hundred !== 13) return 'few';
      return 'other';
    }
    return n === 1 ? 'one' : 'other';
  }
  resolvedOptions() {
    return { locale: LOCALE, type: this.#type };
  }
  static supportedLocalesOf() {
    return [LOCALE];
  }
}

class Collator {
  #base;
  #numeric;
  constructor(_locales, options = {}) {
    this.#base = options.sensitivity === 'base' || options.sensitivity === 'accent';
    this.#numeric = options.numeric === true;
    this.compare = this.compare.bind(this);
  }
  compare(a, b) {
    let x = String(a);
    let y = String(b);
    if (this.#base) [x, y] = [x.toLowerCase(), y.toLowerCase()];
    if (this.#numeric) {
      const split = (s) => s.split(/(\d+)/).map((p, i) => (i % 2 ? Number(p) : p));
      const [px, py] = [split(x), split(y)];
      for (let i = 0; i < Math.min(px.length, py.length); i++) if (px[i] !== py[i]) return px[i] < py[i] ? -1 : 1;
      return px.length - py.length;
    }
    // As ICU's root order, roughly: letters before case, lower case first.
    const [lx, ly] = [x.toLowerCase(), y.toLowerCase()];
    if (lx !== ly) return lx < ly ? -1 : 1;
    return x === y ? 0 : x > y ? -1 : 1;
  }
  resolvedOptions() {
    return { locale: LOCALE, usage: 'sort', sensitivity: this.#base ? 'base' : 'variant', numeric: this.#numeric };
  }
  static supportedLocalesOf() {
    return [LOCALE];
  }
}

// `Intl.DateTimeFormat()` without `new` is allowed, as with the built-ins.
const callable = (C) => new Proxy(C, { apply: (target, _this, args) => new target(...args) });

export const Intl = {
  NumberFormat: callable(NumberFormat),
  DateTimeFormat: callable(DateTimeFormat),
  PluralRules: callable(PluralRules),
  Collator: callable(Collator),
  getCanonicalLocales: () => [LOCALE],
  supportedValuesOf: (key) => (key === 'timeZone' ? ['UTC'] : []),
};
