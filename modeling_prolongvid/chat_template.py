"""The ChatML chat template saved with every ProLongVid processor (upstream's `qwen_1_5` conversation format).

A system turn ("You are a helpful assistant." unless the conversation starts with its own), then each turn as
`<|im_start|>role\n...<|im_end|>\n`. Media items come first in their turn, one `<image>` / `<video>` line each, as
upstream placed them. Assistant text and its `<|im_end|>` sit inside `{% generation %}` so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` marks exactly the tokens to train on.
Kept as a Python string so that Hub remote code (which copies `.py` files only) carries it.
"""

CHAT_TEMPLATE = r"""{%- if messages[0]['role'] != 'system' -%}
<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif -%}
{%- for message in messages -%}
<|im_start|>{{ message['role'] }}
{% if message['content'] is string -%}
{%- set text = message['content'] -%}
{%- else -%}
{%- for item in message['content'] if item['type'] in ('image', 'video') -%}
<{{ item['type'] }}>
{% endfor -%}
{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\n') -%}
{%- endif -%}
{%- if message['role'] == 'assistant' -%}
{% generation %}{{ text }}<|im_end|>{% endgeneration %}{{ '\n' }}{% else -%}
{{ text }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""
