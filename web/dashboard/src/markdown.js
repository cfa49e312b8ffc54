// Markdown to sanitised HTML: marked parses, DOMPurify cleans.
import { marked } from 'marked';
import DOMPurify from 'dompurify';

export function renderMarkdown(el, md) {
  el.innerHTML = DOMPurify.sanitize(marked.parse(md || '', { gfm: true, async: false }));
  return el;
}
