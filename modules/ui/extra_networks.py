"""The Extra Networks panel under the prompt of txt2img and img2img (A1111's): a tab of cards for Textual
Inversion and one for Lora. A click on a card adds its embedding's name, or `<lora:name:1>`, to the prompt (a
second click takes it out again; an embedding goes to the negative prompt when that box was the last one
used). Search and sort (by name or date, either way) run in the page; Refresh lists the folders again; the
"set preview" button on a card saves the output picture picked in the gallery as the network's `name.preview.png`
(an admin's act where there are logins, see modules/security/admins.py). Layout and wiring only: the cards
are rendered by extra_network_cards.py, previews found and saved by modules/networks/previews.py."""
from __future__ import annotations

import gradio as gr

from modules.errors import UserError
from modules.networks.previews import KINDS, LORA, TEXTUAL_INVERSION, network_folder, save_preview
from modules.ui.common import info_html, login_name
from modules.ui.errors import user_errors
from modules.ui.extra_network_cards import embedding_cards, lora_cards, render_cards

TEMPLATE = ('<div class="zoo-en-toolbar" data-tab="${tab}" data-kind="${kind}">'
            '<input type="search" class="zoo-en-search" placeholder="Search" aria-label="Search">'
            '<select class="zoo-en-sort" aria-label="Sort by"><option value="name">Name</option>'
            '<option value="date">Date modified</option></select>'
            '<button type="button" class="zoo-en-direction" title="Ascending or descending">▲</button></div>'
            '${value}')

# Runs once per panel in the page: `element` is the panel, `trigger` sends an event to the server, `watch`
# re-applies the search and sort after the server sends new cards.
SCRIPT = r"""
const bar = () => element.querySelector('.zoo-en-toolbar');
const state = {query: '', sort: 'name', descending: false};
window.zooLastPrompt = window.zooLastPrompt || {};
function apply() {
  const b = bar();
  if (b) {
    b.querySelector('.zoo-en-search').value = state.query;
    b.querySelector('.zoo-en-sort').value = state.sort;
    b.querySelector('.zoo-en-direction').textContent = state.descending ? '▼' : '▲';
  }
  const box = element.querySelector('.zoo-en-cards');
  if (!box) return;
  const words = state.query.toLowerCase().split(/\s+/).filter(w => w);
  const cards = Array.from(box.children);
  for (const card of cards) card.hidden = !words.every(w => card.dataset.search.includes(w));
  const key = state.sort === 'date' ? c => parseFloat(c.dataset.date) : c => c.dataset.name.toLowerCase();
  cards.sort((a, b) => { const x = key(a), y = key(b); const r = x < y ? -1 : x > y ? 1 : 0;
                         return state.descending ? -r : r; });
  const fragment = document.createDocumentFragment();
  for (const card of cards) fragment.appendChild(card);
  box.appendChild(fragment);
}
function escapeRegExp(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }
function toggle(card) {
  const b = bar(), tab = b.dataset.tab, kind = b.dataset.kind, text = card.dataset.prompt;
  const negative = kind === 'textual_inversion' && window.zooLastPrompt[tab] === 'negative';
  const area = document.querySelector(`#${tab}_${negative ? 'neg_' : ''}prompt textarea`);
  if (!area) return;
  const pattern = kind === 'lora'
    ? new RegExp(`\\s*<lora:${escapeRegExp(card.dataset.name)}:[^>]*>`)
    : new RegExp(`(^|\\s+)${escapeRegExp(text)}(?=$|[\\s,])`);
  if (pattern.test(area.value)) area.value = area.value.replace(pattern, '').trim();
  else area.value = area.value.trim() ? `${area.value.replace(/\s+$/, '')} ${text}` : text;
  area.dispatchEvent(new Event('input', {bubbles: true}));
}
element.addEventListener('input', ev => {
  if (ev.target.matches('.zoo-en-search')) { state.query = ev.target.value; apply(); }
});
element.addEventListener('change', ev => {
  if (ev.target.matches('.zoo-en-sort')) { state.sort = ev.target.value; apply(); }
});
element.addEventListener('click', ev => {
  if (ev.target.closest('.zoo-en-direction')) { state.descending = !state.descending; apply(); return; }
  const card = ev.target.closest('.zoo-en-card');
  if (!card) return;
  if (ev.target.closest('.zoo-en-replace')) { trigger('replace_preview', {network: card.dataset.name}); return; }
  toggle(card);
});
element.addEventListener('keydown', ev => {
  const card = ev.target.closest && ev.target.closest('.zoo-en-card');
  if (card && ev.target === card && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); toggle(card); }
});
watch('value', apply);
apply();
"""


def _picked_index(event: gr.SelectData) -> int:
    return event.index


def render(backend, kind: str) -> str:
    """One kind's cards as HTML (also what bench/extra_networks.py times)."""
    folder = network_folder(backend, kind)
    cards = embedding_cards(backend.embeddings) if kind == TEXTUAL_INVERSION else lora_cards(folder)
    return render_cards(kind, cards, folder.folders)


class ExtraNetworksPanel:
    def __init__(self, backend, tab: str):
        self.backend = backend
        self.tab = tab

    def build(self) -> None:
        """The panel, closed: its cards are listed when it is opened (and on Refresh), not with every page."""
        t = self.tab
        self.cards: dict[str, gr.HTML] = {}
        with gr.Accordion("Extra networks", open=False, elem_id=f"{t}_extra_networks") as self.accordion:
            with gr.Tabs(elem_id=f"{t}_extra_tabs"):
                for kind, title in KINDS.items():
                    with gr.Tab(title, id=f"{t}_{kind}_tab", elem_id=f"{t}_{kind}_tab"):
                        self.cards[kind] = gr.HTML("", html_template=TEMPLATE, js_on_load=SCRIPT, tab=t, kind=kind,
                                                   elem_id=f"{t}_{kind}_cards", padding=False)
            with gr.Row():
                self.refresh = gr.Button("↻ Refresh", elem_id=f"{t}_extra_refresh", size="sm", scale=0,
                                         min_width=120)
                self.message = gr.HTML(elem_id=f"{t}_extra_networks_message")

    def wire(self, gallery: gr.Gallery, prompt: gr.Textbox, negative_prompt: gr.Textbox) -> None:
        """Opening and Refresh list the folders; "set preview" saves `gallery`'s picked picture as a card's preview.
        The page remembers which of the prompt boxes was used last (an embedding's card adds to that one)."""
        for box, which in ((prompt, "prompt"), (negative_prompt, "negative")):
            box.focus(None, js=f"() => {{ (window.zooLastPrompt = window.zooLastPrompt || {{}})"
                               f"[{self.tab!r}] = {which!r}; }}", api_name=False, queue=False)
        outputs = [self.cards[kind] for kind in KINDS]
        self.accordion.expand(self._all_cards, outputs=outputs, api_name=False, show_progress="hidden")
        self.refresh.click(self._refreshed, outputs=[*outputs, self.message], api_name=False)
        self.picked = gr.State(0)
        gallery.select(_picked_index, outputs=self.picked, api_name=False, queue=False)
        for kind in KINDS:
            self.cards[kind].replace_preview(self._replace_handler(kind), inputs=[gallery, self.picked],
                                             outputs=[self.cards[kind], self.message], api_name=False)

    @user_errors
    def _all_cards(self):
        return [render(self.backend, kind) for kind in KINDS]

    @user_errors
    def _refreshed(self):
        self.backend.lora_files.refresh()
        self.backend.embeddings.refresh()
        return [*(render(self.backend, kind) for kind in KINDS), ""]

    def _replace_handler(self, kind: str):
        @user_errors
        def replace_preview(gallery, picked, event: gr.EventData, request: gr.Request):
            name = getattr(event, "network", None)
            refusal = self.backend.extensions.admins.refusal(login_name(request))
            if refusal is not None:
                raise UserError(f"Replace preview: only an admin may change the model folders ({refusal})")
            if not gallery:
                raise UserError("Replace preview: generate a picture first, then pick it in the gallery")
            from modules.ui.img2img_tab import gallery_picture  # (img2img_tab imports this module's user)

            picture, _ = gallery_picture(gallery, picked, "")
            save_preview(network_folder(self.backend, kind), name, picture)
            return render(self.backend, kind), info_html(f"Saved the picked picture as the preview of {name}.")
        return replace_preview
