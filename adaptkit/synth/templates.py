"""Call-centre sentence templates per language: an agent (first speaker) and a customer.

A template is one turn; it splits into clauses at punctuation (one to three per turn), and
within-turn pauses may fall only between clauses. Mandarin entries are `hanzi // pinyin`:
the transcript keeps the characters, espeak-ng reads the pinyin. Japanese transcripts keep
their kanji and espeak-ng reads the pyopenjtalk kana.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from adaptkit.synth.voices import kana

KINDS = ("agent_open", "customer_open", "agent_middle", "customer_middle", "customer_close", "agent_close")
"""The turn kinds, in the order a call goes through them (middle turns repeat)."""

_CLAUSE_END = re.compile(r"(?<=[,.?!、。？！，])\s*")
_PINYIN_DIGITS = "ling2 yao1 er4 san1 si4 wu3 liu4 qi1 ba1 jiu3".split()


@dataclass(frozen=True)
class Clause:
    """One clause: its transcript text and what espeak-ng is given to read."""

    text: str
    speech: str


@dataclass(frozen=True)
class Script:
    """The templates of one language."""

    spaced: bool
    """Words are separated by spaces (False for Japanese and Mandarin)."""
    turns: dict[str, list[str]]
    """Templates per turn kind (see KINDS), with `{slot}` fields."""
    fillers: list[str]
    """Filler words spoken before a within-turn pause (OpenETD V3)."""
    backchannels: list[str]
    """Short listener responses placed inside the other speaker's pauses."""
    slots: dict[str, list[str]]
    """Values per slot; `number` (an order or account number) is drawn at random."""


def _script(spaced: bool, turns: str, fillers: str, backchannels: str, slots: dict[str, str]) -> Script:
    """Build a Script from blocks of text: `== kind` headers, one template a line; lists split on `;`."""
    parsed: dict[str, list[str]] = {}
    kind = ""
    for line in turns.strip().splitlines():
        if line.startswith("=="):
            kind = line[2:].strip()
            parsed[kind] = []
        elif line.strip():
            parsed[kind].append(line.strip())
    assert tuple(parsed) == KINDS, tuple(parsed)
    split = lambda s: [x.strip() for x in s.split(";") if x.strip()]  # noqa: E731
    return Script(spaced, parsed, split(fillers), split(backchannels), {k: split(v) for k, v in slots.items()})


SCRIPTS: dict[str, Script] = {
    "en": _script(
        True,
        """
== agent_open
Thank you for calling {company}. My name is {agent}. How can I help you today?
Good morning, you are through to {company}. What can I do for you?
Hello, this is {agent} at {company}. How may I help you?
== customer_open
Hi, I am calling about my {service}.
Hello, my new {device} has not arrived yet. It was due on {day}.
Hi {agent}, I think there is a mistake on my {service}.
Good morning, I would like to cancel my {service}.
Hello, I was charged twice for my {service} this month.
== agent_middle
I am sorry to hear that. Could you give me your account number please?
Let me check that for you. Can you confirm your full name?
Thank you. I can see order {number} here. It was sent on {day}.
I understand. I will raise a ticket for you, and someone will call you back within {small} days.
Okay, the refund has been approved. You will see it within {small} days.
Could you hold the line for a moment? I need to check with my team.
All right, I have updated your {service} for you.
== customer_middle
Yes, it is {number}.
Sure, my name is {name}.
Okay, how long will that take?
I see. Will I get an email about it?
That is fine, but I need it before {day}.
Right. And will the extra charge be removed?
No problem, I can wait.
== customer_close
No, that is all. Thank you for your help.
Great, thanks a lot.
Okay, that sounds good. Thank you.
== agent_close
You are welcome. Have a nice day.
Thank you for calling {company}. Goodbye.
My pleasure. Take care and have a good evening.
""",
        "um; uh; well; you know",
        "uh-huh; okay; right; I see; yes; mm-hmm",
        {
            "company": "Northwind Mobile; Bluebird Bank; Sunrise Energy; Harbor Internet",
            "agent": "Sarah; James; Emily; David; Priya",
            "name": "Michael Brown; Laura Smith; Daniel Lee; Anna White; Tom Walker",
            "day": "Monday; Tuesday; Wednesday; Thursday; Friday",
            "service": "phone bill; internet plan; credit card; energy bill; mobile plan",
            "device": "router; phone; SIM card; modem",
            "small": "two; three; five; seven",
        },
    ),
    "ja": _script(
        False,
        """
== agent_open
お電話ありがとうございます。{company}の{agent}でございます。本日はどのようなご用件でしょうか。
はい、{company}カスタマーセンターです。ご用件をお伺いします。
お待たせいたしました。担当の{agent}と申します。
== customer_open
もしもし、{service}のことで電話しました。
すみません、注文した{device}がまだ届いていないんですが。
あの、今月の{service}が二重に請求されているようなんです。
{service}を解約したいんですけど、手続きを教えてください。
== agent_middle
大変申し訳ございません。お客様番号を教えていただけますか。
確認いたしますので、少々お待ちください。
ありがとうございます。ご注文番号{number}ですね。{day}に発送済みとなっております。
承知いたしました。担当部署から{small}日以内にご連絡いたします。
返金の手続きが完了いたしました。
恐れ入りますが、お名前をフルネームでお願いいたします。
== customer_middle
はい、{number}です。
{name}です。
わかりました。どのくらいかかりますか。
そうですか。メールで連絡はもらえますか。
{day}までに届くと助かるんですが。
なるほど、追加の料金はかかりませんか。
== customer_close
はい、大丈夫です。ありがとうございました。
わかりました。よろしくお願いします。
== agent_close
お電話ありがとうございました。失礼いたします。
{company}の{agent}が承りました。ありがとうございました。
""",
        "えーと; あのー; そのー; まあ",
        "はい; ええ; なるほど; そうですか; はいはい",
        {
            "company": "さくら通信; みどり銀行; ひかり電力",
            "agent": "田中; 佐藤; 鈴木; 高橋",
            "name": "山本健太; 中村美咲; 小林大輔; 加藤由美",
            "day": "月曜日; 火曜日; 水曜日; 金曜日",
            "service": "携帯料金; インターネット契約; クレジットカード; 電気料金",
            "device": "ルーター; スマートフォン; SIMカード",
            "small": "三; 五; 七",
        },
    ),
    "zh": _script(
        False,
        """
== agent_open
您好，这里是{company}客服中心。请问有什么可以帮您？ // nin2 hao3, zhe4 li3 shi4 {company} ke4 fu2 zhong1 xin1. qing3 wen4 you3 shen2 me5 ke3 yi3 bang1 nin2?
感谢您的来电，我是客服{agent}。 // gan3 xie4 nin2 de5 lai2 dian4, wo3 shi4 ke4 fu2 {agent}.
您好，{company}，请问您需要什么帮助？ // nin2 hao3, {company}, qing3 wen4 nin2 xu1 yao4 shen2 me5 bang1 zhu4?
== customer_open
你好，我想问一下我的{service}。 // ni3 hao3, wo3 xiang3 wen4 yi2 xia4 wo3 de5 {service}.
我买的{device}还没有到，已经等了好几天了。 // wo3 mai3 de5 {device} hai2 mei2 you3 dao4, yi3 jing1 deng3 le5 hao3 ji3 tian1 le5.
这个月我的{service}被扣了两次钱。 // zhe4 ge4 yue4 wo3 de5 {service} bei4 kou4 le5 liang3 ci4 qian2.
我想取消我的{service}。 // wo3 xiang3 qu3 xiao1 wo3 de5 {service}.
== agent_middle
非常抱歉。请提供一下您的订单号。 // fei1 chang2 bao4 qian4. qing3 ti2 gong1 yi2 xia4 nin2 de5 ding4 dan1 hao4.
好的，请稍等，我帮您查一下。 // hao3 de5, qing3 shao1 deng3, wo3 bang1 nin2 cha2 yi2 xia4.
订单{number}已经在{day}发货了。 // ding4 dan1 {number} yi3 jing1 zai4 {day} fa1 huo4 le5.
我已经为您申请了退款，{small}天内到账。 // wo3 yi3 jing1 wei4 nin2 shen1 qing3 le5 tui4 kuan3, {small} tian1 nei4 dao4 zhang4.
请问您的全名是什么？ // qing3 wen4 nin2 de5 quan2 ming2 shi4 shen2 me5?
明白，我会帮您登记一个工单。 // ming2 bai5, wo3 hui4 bang1 nin2 deng1 ji4 yi2 ge4 gong1 dan1.
== customer_middle
订单号是{number}。 // ding4 dan1 hao4 shi4 {number}.
我叫{name}。 // wo3 jiao4 {name}.
好的，大概需要多长时间？ // hao3 de5, da4 gai4 xu1 yao4 duo1 chang2 shi2 jian1?
明白了，会有短信通知吗？ // ming2 bai5 le5, hui4 you3 duan3 xin4 tong1 zhi1 ma5?
我需要在{day}之前收到。 // wo3 xu1 yao4 zai4 {day} zhi1 qian2 shou1 dao4.
== customer_close
没有了，谢谢你。 // mei2 you3 le5, xie4 xie5 ni3.
好的，麻烦你了。 // hao3 de5, ma2 fan5 ni3 le5.
== agent_close
不客气，祝您生活愉快，再见。 // bu2 ke4 qi5, zhu4 nin2 sheng1 huo2 yu2 kuai4, zai4 jian4.
感谢您的来电，再见。 // gan3 xie4 nin2 de5 lai2 dian4, zai4 jian4.
""",
        "那个 // nei4 ge5; 嗯 // en4; 就是 // jiu4 shi4",
        "嗯 // en4; 对 // dui4; 好的 // hao3 de5; 是的 // shi4 de5; 明白 // ming2 bai5",
        {
            "company": "北风通信 // bei3 feng1 tong1 xin4; 长城银行 // chang2 cheng2 yin2 hang2; 阳光电力 // yang2 guang1 dian4 li4",
            "agent": "王丽 // wang2 li4; 李明 // li3 ming2; 张伟 // zhang1 wei3",
            "name": "刘洋 // liu2 yang2; 陈静 // chen2 jing4; 赵强 // zhao4 qiang2; 孙悦 // sun1 yue4",
            "day": "星期一 // xing1 qi1 yi1; 星期三 // xing1 qi1 san1; 星期五 // xing1 qi1 wu3",
            "service": "手机话费 // shou3 ji1 hua4 fei4; 宽带套餐 // kuan1 dai4 tao4 can1; 信用卡 // xin4 yong4 ka3; 电费 // dian4 fei4",
            "device": "路由器 // lu4 you2 qi4; 手机 // shou3 ji1; 电话卡 // dian4 hua4 ka3",
            "small": "三 // san1; 五 // wu3; 七 // qi1",
        },
    ),
    "ms": _script(
        True,
        """
== agent_open
Terima kasih kerana menghubungi {company}. Nama saya {agent}. Bagaimana saya boleh bantu anda?
Selamat pagi, {company} di sini. Apa yang boleh saya bantu?
Helo, saya {agent} dari {company}. Ada apa-apa yang boleh saya bantu?
== customer_open
Helo, saya ada masalah dengan {service} saya.
Selamat pagi, {device} yang saya pesan belum sampai lagi.
Saya hendak membatalkan {service} saya.
Bulan ini saya dicaj dua kali untuk {service} saya.
== agent_middle
Saya minta maaf tentang perkara itu. Boleh berikan nombor akaun anda?
Sila tunggu sebentar, saya semak dahulu.
Terima kasih. Pesanan {number} telah dihantar pada hari {day}.
Baiklah, bayaran balik akan dibuat dalam masa {small} hari.
Boleh saya tahu nama penuh anda?
Saya faham. Saya akan buka tiket untuk anda, dan pasukan kami akan hubungi anda semula.
== customer_middle
Ya, nombornya {number}.
Nama saya {name}.
Baik, berapa lama masa yang diperlukan?
Oh begitu. Adakah saya akan menerima emel?
Saya perlukannya sebelum hari {day}.
== customer_close
Tidak ada lagi. Terima kasih atas bantuan anda.
Baiklah, terima kasih banyak.
== agent_close
Sama-sama. Semoga hari anda menyenangkan.
Terima kasih kerana menghubungi {company}. Selamat tinggal.
""",
        "emm; erm; apa tu; macam",
        "ya; okey; baik; faham; betul",
        {
            "company": "Telekom Seri; Bank Melati; Tenaga Suria",
            "agent": "Aisyah; Farid; Nurul; Hafiz",
            "name": "Ahmad Zaki; Siti Aminah; Lim Wei Ling; Kumar Raj",
            "day": "Isnin; Selasa; Rabu; Jumaat",
            "service": "bil telefon; pelan internet; kad kredit; bil elektrik",
            "device": "penghala; telefon bimbit; kad SIM",
            "small": "tiga; lima; tujuh",
        },
    ),
    "ta": _script(
        True,
        """
== agent_open
வணக்கம், {company} வாடிக்கையாளர் சேவை மையம். உங்களுக்கு எப்படி உதவ முடியும்?
வணக்கம், நான் {agent} பேசுகிறேன். சொல்லுங்கள்.
== customer_open
வணக்கம், என் {service} பற்றி பேச வேண்டும்.
நான் ஆர்டர் செய்த {device} இன்னும் வரவில்லை.
இந்த மாதம் {service} இரண்டு முறை வசூலிக்கப்பட்டது.
என் {service} ரத்து செய்ய வேண்டும்.
== agent_middle
மன்னிக்கவும். உங்கள் கணக்கு எண்ணைச் சொல்ல முடியுமா?
ஒரு நிமிடம் காத்திருங்கள், நான் சரிபார்க்கிறேன்.
நன்றி. ஆர்டர் எண் {number} {day} அன்று அனுப்பப்பட்டது.
சரி, உங்கள் பணம் {small} நாட்களில் திருப்பி அனுப்பப்படும்.
உங்கள் முழு பெயர் என்ன?
== customer_middle
ஆமாம், எண் {number}.
என் பெயர் {name}.
சரி, இதற்கு எவ்வளவு நேரம் ஆகும்?
புரிகிறது. எனக்கு மின்னஞ்சல் வருமா?
எனக்கு அது அவசரமாக வேண்டும்.
== customer_close
வேறு எதுவும் இல்லை. உதவிக்கு நன்றி.
சரி, மிக்க நன்றி.
== agent_close
நன்றி. உங்கள் நாள் இனிதாக அமையட்டும்.
அழைத்ததற்கு நன்றி. வணக்கம்.
""",
        "அது வந்து; அதாவது; அப்புறம்",
        "சரி; ஆமாம்; ஓ; புரிகிறது; சரிங்க",
        {
            "company": "சூரியா மொபைல்; தாமரை வங்கி; நிலா மின்சாரம்",
            "agent": "பிரியா; ராஜா; கவிதா; அருண்",
            "name": "குமார்; லட்சுமி; செல்வம்; மீனா",
            "day": "திங்கள்கிழமை; செவ்வாய்க்கிழமை; புதன்கிழமை; வெள்ளிக்கிழமை",
            "service": "கைபேசி கட்டணம்; இணைய இணைப்பு; கடன் அட்டை; மின் கட்டணம்",
            "device": "ரவுட்டர்; கைபேசி; சிம் கார்டு",
            "small": "மூன்று; ஐந்து; ஏழு",
        },
    ),
}
"""Templates per language code."""


def _pair(entry: str) -> tuple[str, str]:
    """`hanzi // pinyin` -> (text, speech); any other entry is both."""
    text, _, speech = entry.partition(" // ")
    return text, speech or text


def draw_slots(lang: str, rng: np.random.Generator) -> dict[str, tuple[str, str]]:
    """Slot values (text, speech) for one conversation, so that names and numbers stay consistent."""
    slots = {k: _pair(v[rng.integers(len(v))]) for k, v in SCRIPTS[lang].slots.items()}
    number = str(rng.integers(1000, 10000))
    speech = " ".join(_PINYIN_DIGITS[int(d)] for d in number) if lang == "zh" else number
    slots["number"] = (number, speech)
    return slots


def _clause(lang: str, text: str, speech: str) -> Clause:
    return Clause(text, kana(text) if lang == "ja" else speech)


def turn_clauses(lang: str, kind: str, rng: np.random.Generator, slots: dict[str, tuple[str, str]], used: set) -> list[Clause]:
    """Fill one template of `kind` (not yet in `used`, when possible) and split it into clauses."""
    templates = SCRIPTS[lang].turns[kind]
    fresh = [i for i in range(len(templates)) if (kind, i) not in used] or list(range(len(templates)))
    i = fresh[rng.integers(len(fresh))]
    used.add((kind, i))
    text, speech = _pair(templates[i])
    text = text.format(**{k: v[0] for k, v in slots.items()})
    speech = speech.format(**{k: v[1] for k, v in slots.items()})
    texts, speeches = split_clauses(text), split_clauses(speech)
    assert len(texts) == len(speeches), (texts, speeches)
    return [_clause(lang, t, s) for t, s in zip(texts, speeches)]


def split_clauses(text: str) -> list[str]:
    """Split after each punctuation mark (`,` `.` `?` `!` and their CJK forms)."""
    return [c for c in _CLAUSE_END.split(text.strip()) if c]


def word(lang: str, which: str, rng: np.random.Generator) -> Clause:
    """A random filler (`which="fillers"`) or backchannel (`which="backchannels"`)."""
    entries = getattr(SCRIPTS[lang], which)
    return _clause(lang, *_pair(entries[rng.integers(len(entries))]))
