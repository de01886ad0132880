"""The report's words in English and Turkish, and numbers written the way each reads them.

Turkish groups thousands with a dot, uses a decimal comma and puts the percent sign first
(1.234,5 and %12,3); English writes 1,234.5 and 12.3%. Every text key exists in both
languages (a test checks), so switching --lang never falls back to the other one.
"""

from __future__ import annotations

import math

LANGS = ("en", "tr")


def num(x: float | int | None, lang: str, digits: int = 2) -> str:
    """`x` with `digits` decimals (integers without), grouped for the language; '–' for None."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    text = f"{x:,}" if isinstance(x, int) else f"{x:,.{digits}f}"
    if lang == "tr":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def pct(x: float | None, lang: str, digits: int = 1) -> str:
    """A fraction as a percentage: 0.123 -> '12.3%' (en) or '%12,3' (tr)."""
    if x is None or not math.isfinite(x):
        return "–"
    body = num(100 * x, lang, digits)
    return f"%{body}" if lang == "tr" else f"{body}%"


def sci(x: float | None, lang: str) -> str:
    """Large quantities (FLOPs, tokens): 2.15e25 as '2.15 × 10^25'."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    if -3 <= exp < 6:
        return num(x, lang, 2 if exp < 3 else 0)
    return f"{num(x / 10 ** exp, lang, 2)} × 10^{exp}"


def usd(x: float | None, lang: str) -> str:
    """Dollars at a precision that matches their size: $0.0012, $12.34, $63.2M."""
    if x is None or not math.isfinite(x):
        return "–"
    for div, unit_en, unit_tr in ((1e9, "B", " milyar"), (1e6, "M", " milyon"), (1e3, "k", " bin")):
        if abs(x) >= div:
            body = num(x / div, lang, 1)
            return f"{body}{unit_tr} $" if lang == "tr" else f"${body}{unit_en}"
    body = small(x, lang)
    return f"{body} $" if lang == "tr" else f"${body}"


def small(x: float | None, lang: str, sig: int = 2) -> str:
    """A quantity that may be tiny (a CPU run's kWh or dollars) with `sig` significant digits
    after the leading zeros, so 0.00012 is not shown as 0.0000."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0 or abs(x) >= 1:
        return num(float(x), lang, 2)
    digits = sig - 1 - math.floor(math.log10(abs(x)))
    return num(float(x), lang, digits)


def seconds(x: float | None, lang: str) -> str:
    if x is None:
        return "–"
    unit = "sn" if lang == "tr" else "s"
    if x >= 90:
        return f"{num(x / 60, lang, 1)} {'dk' if lang == 'tr' else 'min'}"
    return f"{num(x, lang, 1)} {unit}"


TEXT: dict[str, dict[str, str]] = {
    "title": {
        "en": "How this assistant was trained: the run's own report",
        "tr": "Bu asistan nasıl eğitildi: çalıştırmanın kendi raporu",
    },
    "intro": {
        "en": "A chat assistant is built in a chain of stages: collect and clean text, cut it into "
              "tokens, pre-train a model to predict the next token, teach it to answer (SFT), align "
              "it with people's preferences (RLHF), then measure it and attack it. Every figure below "
              "was measured in this run and read from its run directory; the big-model figures beside "
              "them are the published ones, so you can see where a laptop-sized run stands.",
        "tr": "Bir sohbet asistanı aşama aşama kurulur: metin toplanıp temizlenir, belirteçlere "
              "(token) bölünür, model bir sonraki belirteci tahmin etmeyi öğrenerek ön eğitimden "
              "geçer, ardından soru yanıtlamayı öğrenir (SFT), insanların tercihlerine göre ayarlanır "
              "(RLHF), en sonunda da ölçülür ve saldırılarla sınanır. Aşağıdaki her sayı bu "
              "çalıştırmada ölçüldü ve çalıştırma klasöründen okundu. Yanlarındaki büyük model "
              "değerleri yayımlanmış rakamlardır; böylece dizüstü ölçeğinde bir çalıştırmanın nerede "
              "durduğunu görebilirsiniz.",
    },
    "not_run": {
        "en": "This stage did not run in this run, so there is nothing of it to show.",
        "tr": "Bu aşama bu çalıştırmada yer almadı; gösterilecek bir sonucu yok.",
    },
    "stages_absent": {"en": "Stages that did not run", "tr": "Çalışmayan aşamalar"},
    "stages_scaled": {
        "en": "Training shortened so the run ended within its time budget (run.time_budget; this machine "
              "evaluated and sampled slower than the one the preset was sized on)",
        "tr": "Çalıştırma süre bütçesinde (run.time_budget) bitsin diye kısaltılan eğitimler (bu makine, ön "
              "ayarın boyutlandırıldığı makineden daha yavaş değerlendirdi ve örnekledi)",
    },
    "none": {"en": "none", "tr": "yok"},
    # header
    "h_env": {"en": "Run and environment", "tr": "Çalıştırma ve ortam"},
    "env_explain": {
        "en": "Where and with what this run was made, so that anyone can repeat it: the same seed and "
              "configuration on the same code give the same models.",
        "tr": "Bu çalıştırmanın nerede ve hangi araçlarla yapıldığı. Aynı kod, aynı tohum (seed) ve "
              "aynı ayarlarla çalıştıran herkes aynı modelleri elde eder.",
    },
    "k_run_dir": {"en": "Run directory", "tr": "Çalıştırma klasörü"},
    "k_preset": {"en": "Preset", "tr": "Hazır ayar"},
    "k_seed": {"en": "Seed", "tr": "Tohum (seed)"},
    "k_commit": {"en": "Git commit", "tr": "Git commit"},
    "k_versions": {"en": "Versions", "tr": "Sürümler"},
    "k_hardware": {"en": "Hardware", "tr": "Donanım"},
    "k_config": {"en": "Configuration (config.toml)", "tr": "Ayarlar (config.toml)"},
    "h_stages": {"en": "Stages and their wall time", "tr": "Aşamalar ve süreleri"},
    "col_stage": {"en": "Stage", "tr": "Aşama"},
    "col_status": {"en": "Status", "tr": "Durum"},
    "col_wall": {"en": "Wall time", "tr": "Süre"},
    "col_device": {"en": "Device", "tr": "Cihaz"},
    "status_complete": {"en": "complete", "tr": "tamamlandı"},
    "status_running": {"en": "interrupted", "tr": "yarıda kaldı"},
    "status_absent": {"en": "did not run", "tr": "çalışmadı"},
    "total": {"en": "Total", "tr": "Toplam"},
    # data
    "h_data": {"en": "1. Data: collecting and cleaning text", "tr": "1. Veri: metni toplamak ve temizlemek"},
    "data_explain": {
        "en": "A model learns only from what it reads, so the first job is to gather text (web pages, "
              "an encyclopedia, books, code) and throw away what would teach it bad habits: menus and "
              "boilerplate, spam, pages in other languages, copies of the same page, and anything that "
              "overlaps the test sets. The funnel below counts what each cleaning step kept.",
        "tr": "Model yalnızca okuduğundan öğrenir. Bu yüzden ilk iş metin toplamak (web sayfaları, "
              "ansiklopedi, kitaplar, kod) ve modele kötü alışkanlık kazandıracak her şeyi ayıklamaktır: "
              "menüler ve kalıp metinler, spam, başka dillerdeki sayfalar, aynı sayfanın kopyaları ve "
              "sınav sorularıyla örtüşen metinler. Aşağıdaki huni, her temizlik adımında neyin kaldığını "
              "sayıyor.",
    },
    "h_sources": {"en": "Sources and their sizes", "tr": "Kaynaklar ve boyutları"},
    "col_source": {"en": "Source", "tr": "Kaynak"},
    "col_docs_in": {"en": "Documents read", "tr": "Okunan belge"},
    "col_docs_out": {"en": "Documents kept", "tr": "Kalan belge"},
    "col_bytes_in": {"en": "Bytes read", "tr": "Okunan bayt"},
    "col_bytes_out": {"en": "Bytes kept", "tr": "Kalan bayt"},
    "col_retention": {"en": "Kept", "tr": "Kalan oran"},
    "gpt3_mix": {
        "en": "For scale, the mix GPT-3 was trained on (its paper's table 2.2): most of it filtered Common "
              "Crawl, with smaller, cleaner sources shown to the model more often than their size.",
        "tr": "Ölçek vermesi için GPT-3'ün eğitildiği karışım (makalesindeki tablo 2.2): büyük kısmı "
              "filtrelenmiş Common Crawl; daha küçük ve temiz kaynaklar ise boyutlarının hak ettiğinden "
              "daha sık gösterilmiş.",
    },
    "col_share": {"en": "Share of training", "tr": "Eğitimdeki payı"},
    "h_funnel": {"en": "The cleaning funnel", "tr": "Temizlik hunisi"},
    "col_step": {"en": "Step", "tr": "Adım"},
    "col_docs": {"en": "Documents", "tr": "Belge"},
    "col_bytes": {"en": "Bytes", "tr": "Bayt"},
    "col_of_start": {"en": "Of the start", "tr": "Başlangıca göre"},
    "retention_claim": {
        "en": "The seed says only 10-20% of crawled web text survives cleaning (RefinedWeb keeps about "
              "10% of Common Crawl). In this run {web} of the web documents survived, and {all} of all "
              "documents. The built-in crawl is small and planted with known junk, so expect a higher "
              "figure than on a real crawl; what matters is that every kind of junk was caught.",
        "tr": "Kaynak yazı, taranan web metninin yalnızca %10-20'sinin temizlikten sağ çıktığını "
              "söylüyor (RefinedWeb, Common Crawl belgelerinin yaklaşık %10'unu tutuyor). Bu "
              "çalıştırmada web belgelerinin {web} kadarı, tüm belgelerin ise {all} kadarı kaldı. "
              "Yerleşik tarama küçük ve içine bilinen çöpler yerleştirilmiş; bu yüzden oranın gerçek bir "
              "taramadakinden yüksek çıkması beklenir. Asıl önemli olan, her tür çöpün yakalanmış olması.",
    },
    "plot_funnel": {"en": "Share of documents left after each step", "tr": "Her adımdan sonra kalan belge oranı"},
    "skipped": {"en": "Records skipped as unreadable", "tr": "Okunamadığı için atlanan kayıt"},
    "contaminated": {"en": "Benchmark items found in the training text and removed",
                     "tr": "Eğitim metninde bulunup çıkarılan sınav sorusu"},
    # tokenizer
    "h_tokenizer": {"en": "2. Tokenization: from text to numbers", "tr": "2. Belirteçleme: metinden sayılara"},
    "tokenizer_explain": {
        "en": "A model reads numbers, not letters. The tokenizer (byte-pair encoding) learns which "
              "pieces of text occur together often and gives each piece an id. The more bytes one "
              "token carries, the more text fits into the model's context and the cheaper training "
              "is. GPT-4's tokenizer was trained mostly on English, so Turkish costs it more tokens; "
              "this run's tokenizer was trained on both languages.",
        "tr": "Model harfleri değil sayıları okur. Belirteçleyici (byte-pair encoding) metinde sık sık "
              "yan yana gelen parçaları öğrenir ve her parçaya bir numara verir. Bir belirteç ne kadar "
              "çok bayt taşırsa modelin bağlamına o kadar çok metin sığar ve eğitim o kadar ucuzlar. "
              "GPT-4'ün belirteçleyicisi çoğunlukla İngilizceyle eğitildiği için Türkçe ona daha çok "
              "belirtece mal olur; bu çalıştırmanınki ise iki dille birlikte eğitildi.",
    },
    "col_phrase": {"en": "Phrase", "tr": "İfade"},
    "col_tokenizer": {"en": "Tokenizer", "tr": "Belirteçleyici"},
    "col_ids": {"en": "Token ids", "tr": "Belirteç numaraları"},
    "col_pieces": {"en": "Pieces", "tr": "Parçalar"},
    "col_bpt": {"en": "Bytes per token", "tr": "Belirteç başına bayt"},
    "this_run": {"en": "this run", "tr": "bu çalıştırma"},
    "gpt4": {"en": "GPT-4 (cl100k)", "tr": "GPT-4 (cl100k)"},
    "no_reference": {
        "en": "GPT-4's tokenizer file (cl100k_base.tiktoken) was not found, so only this run's ids are shown.",
        "tr": "GPT-4'ün belirteçleyici dosyası (cl100k_base.tiktoken) bulunamadı; yalnızca bu çalıştırmanın numaraları gösteriliyor.",
    },
    "h_bpt_lang": {"en": "Bytes per token on held-out text", "tr": "Ayrılmış metinde belirteç başına bayt"},
    "col_lang": {"en": "Language / source", "tr": "Dil / kaynak"},
    "col_tokens": {"en": "Tokens", "tr": "Belirteç"},
    "vocab": {"en": "Vocabulary size", "tr": "Sözlük boyutu"},
    # pretrain
    "h_pretrain": {"en": "3. Pre-training: predicting the next token", "tr": "3. Ön eğitim: bir sonraki belirteci tahmin etmek"},
    "pretrain_explain": {
        "en": "The model reads the token stream and, at every position, guesses the next token; the "
              "loss measures how surprised it was. Bits per byte is the same surprise per byte of "
              "text, which lets models with different tokenizers be compared: lower is better, and 8 "
              "would mean it knows nothing. MFU is the share of the hardware's peak arithmetic the "
              "training actually used.",
        "tr": "Model belirteç akışını okur ve her konumda bir sonraki belirteci tahmin eder; kayıp "
              "(loss), modelin ne kadar şaşırdığını ölçer. Bayt başına bit, aynı şaşkınlığın metnin "
              "her baytına düşen payıdır; böylece farklı belirteçleyicili modeller karşılaştırılabilir. "
              "Düşük olan iyidir; 8 hiçbir şey bilmemek demektir. MFU, donanımın en yüksek hesap "
              "gücünün eğitimde gerçekten kullanılan payıdır.",
    },
    "k_val_bpb": {"en": "Validation bits per byte", "tr": "Doğrulama: bayt başına bit"},
    "k_final_loss": {"en": "Final training loss", "tr": "Son eğitim kaybı"},
    "k_steps": {"en": "Optimizer steps", "tr": "Optimizasyon adımı"},
    "k_params": {"en": "Parameters", "tr": "Parametre"},
    "k_tokens_seen": {"en": "Tokens seen", "tr": "Görülen belirteç"},
    "k_throughput": {"en": "Throughput (tokens/s)", "tr": "Hız (belirteç/sn)"},
    "k_mfu": {"en": "MFU", "tr": "MFU"},
    "plot_loss": {"en": "Training and validation loss", "tr": "Eğitim ve doğrulama kaybı"},
    "plot_bpb": {"en": "Validation bits per byte", "tr": "Doğrulama: bayt başına bit"},
    "step": {"en": "step", "tr": "adım"},
    "train_loss": {"en": "training loss", "tr": "eğitim kaybı"},
    "val_loss": {"en": "validation loss", "tr": "doğrulama kaybı"},
    "h_completion": {"en": "The seed's example: \"Bugün hava çok\"", "tr": "Kaynak yazının örneği: \"Bugün hava çok\""},
    "completion_explain": {
        "en": "A pre-trained model only continues text. Given the start of a Turkish sentence ('The "
              "weather today is very'), this run's base model wrote (greedy decoding):",
        "tr": "Ön eğitimli bir model yalnızca metni sürdürür. Bir Türkçe cümlenin başı verildiğinde bu "
              "çalıştırmanın temel modeli şunu yazdı (açgözlü çözümleme):",
    },
    "h_samples": {"en": "Samples written at the end of pre-training", "tr": "Ön eğitim sonunda üretilen örnekler"},
    "h_samples_steps": {"en": "Samples during pre-training", "tr": "Ön eğitim sırasında üretilen örnekler"},
    "samples_steps_explain": {
        "en": "What the model wrote from the same beginnings as it trained: first letters and syllables, "
              "then words, then sentences that sound like the corpus.",
        "tr": "Model eğitilirken aynı başlangıçlardan ne yazdı: önce harfler ve heceler, sonra sözcükler, "
              "sonunda derlemin diline benzeyen cümleler.",
    },
    # sft
    "h_sft": {"en": "4. Supervised fine-tuning: learning to answer", "tr": "4. Denetimli ince ayar: yanıt vermeyi öğrenmek"},
    "sft_explain": {
        "en": "Pre-training gives knowledge but not manners: the base model does not know it should "
              "answer a question. SFT trains it further on example conversations, with the loss only "
              "on the assistant's turns. The same questions, asked of both models:",
        "tr": "Ön eğitim bilgi kazandırır ama görgü kazandırmaz: temel model bir soruya yanıt vermesi "
              "gerektiğini bilmez. SFT, modeli örnek konuşmalarla eğitmeye devam eder; kayıp yalnızca "
              "asistanın sözlerinden hesaplanır. Aynı sorular, iki modele de soruldu:",
    },
    "col_prompt": {"en": "Prompt", "tr": "Soru"},
    "base": {"en": "Base model", "tr": "Temel model"},
    "sft": {"en": "SFT model", "tr": "SFT modeli"},
    "dpo": {"en": "DPO model", "tr": "DPO modeli"},
    "ppo": {"en": "PPO model", "tr": "PPO modeli"},
    "grpo": {"en": "GRPO model", "tr": "GRPO modeli"},
    "h_sft_metrics": {"en": "SFT figures", "tr": "SFT sonuçları"},
    "plot_sft": {"en": "SFT loss", "tr": "SFT kaybı"},
    # rlhf
    "h_rlhf": {"en": "5. RLHF: aligning with people's preferences", "tr": "5. RLHF: insan tercihlerine göre ayarlamak"},
    "rlhf_explain": {
        "en": "The SFT model writes two answers to each prompt and a judge (a person, or a model "
              "standing in for one) picks the better. A reward model learns to score answers the way "
              "the judge chose; then the chat model is pushed toward higher-scoring answers, either "
              "directly from the pairs (DPO) or by reinforcement learning with the reward model "
              "(PPO, GRPO), on a leash (KL) that keeps it close to the SFT model.",
        "tr": "SFT modeli her soruya iki yanıt yazar; bir hakem (bir insan ya da onun yerine geçen bir "
              "model) daha iyisini seçer. Ödül modeli, yanıtları hakemin seçtiği gibi puanlamayı öğrenir. "
              "Ardından sohbet modeli daha yüksek puan alan yanıtlara doğru itilir: ya doğrudan çiftlerden "
              "(DPO) ya da ödül modeliyle pekiştirmeli öğrenmeyle (PPO, GRPO). Bu sırada bir tasma (KL) "
              "modelin SFT modelinden fazla uzaklaşmasını engeller.",
    },
    "h_pairs": {"en": "Preference pairs and the choice made", "tr": "Tercih çiftleri ve yapılan seçim"},
    "col_chosen": {"en": "Chosen", "tr": "Seçilen"},
    "col_rejected": {"en": "Rejected", "tr": "Reddedilen"},
    "pairs_count": {"en": "Pairs with a majority preference", "tr": "Çoğunluk tercihi olan çift"},
    "h_reward": {"en": "Reward model", "tr": "Ödül modeli"},
    "reward_explain": {
        "en": "Accuracy is the share of held-out pairs where the reward model scores the chosen answer "
              "higher. 50% is a coin flip; InstructGPT's reward model reached 72% on human labels.",
        "tr": "Doğruluk, ayrılmış çiftlerde ödül modelinin seçilen yanıta daha yüksek puan verdiği "
              "çiftlerin oranıdır. %50 yazı tura demektir; InstructGPT'nin ödül modeli insan "
              "etiketlerinde %72'ye ulaşmıştı.",
    },
    "reward_headline": {
        "en": "This run's reward model agrees with the judge on {acc} of {n} held-out pairs.",
        "tr": "Bu çalıştırmanın ödül modeli, ayrılmış {n} çiftin {acc} kadarında hakemle aynı seçimi yapıyor.",
    },
    "dpo_headline": {
        "en": "After DPO the model prefers the chosen answer on {acc} of held-out pairs; it refuses {refusal} "
              "of harmful requests, against {sft} for the SFT model.",
        "tr": "DPO'dan sonra model, ayrılmış çiftlerin {acc} kadarında seçilen yanıtı tercih ediyor; zararlı "
              "isteklerin {refusal} kadarını reddediyor (SFT modelinde bu oran {sft}).",
    },
    "h_dpo": {"en": "DPO", "tr": "DPO"},
    "h_ppo": {"en": "PPO", "tr": "PPO"},
    "h_grpo": {"en": "GRPO", "tr": "GRPO"},
    "plot_rl": {"en": "{algo}: score and KL", "tr": "{algo}: puan ve KL"},
    "h_before_after": {"en": "Answers before and after RLHF", "tr": "RLHF öncesi ve sonrası yanıtlar"},
    "col_metric": {"en": "Figure", "tr": "Ölçüt"},
    "col_value": {"en": "Value", "tr": "Değer"},
    # eval
    "h_eval": {"en": "6. Evaluation: benchmarks", "tr": "6. Değerlendirme: karşılaştırmalı testler"},
    "eval_explain": {
        "en": "The seed compares models on standard tests: MMLU (multiple-choice knowledge), GSM8K "
              "(word problems), HumanEval (writing code that passes tests) and TruthfulQA (not "
              "repeating popular falsehoods). This run scores each checkpoint on held-out sets in the "
              "same formats, built from its own invented world; the published GPT-4 scores are given "
              "for scale.",
        "tr": "Kaynak yazı modelleri standart testlerle karşılaştırır: MMLU (çoktan seçmeli bilgi), "
              "GSM8K (problem çözme), HumanEval (testlerden geçen kod yazma) ve TruthfulQA (yaygın "
              "yanlışları tekrarlamamak). Bu çalıştırma her modeli, kendi uydurma dünyasından üretilmiş "
              "ve aynı biçimdeki ayrılmış sorularla puanlıyor; ölçek vermesi için GPT-4'ün yayımlanmış "
              "puanları da yanında.",
    },
    "col_benchmark": {"en": "Benchmark", "tr": "Test"},
    "col_gpt4": {"en": "GPT-4 (published)", "tr": "GPT-4 (yayımlanan)"},
    # redteam
    "h_redteam": {"en": "7. Red teaming: trying to make it misbehave", "tr": "7. Kırmızı takım: modeli yoldan çıkarmaya çalışmak"},
    "redteam_explain": {
        "en": "Harmful requests are sent as they are and wrapped in jailbreak tricks (role play, "
              "'ignore previous instructions', encodings...). The attack success rate is the share of "
              "answers a judge calls harmful; lower is safer. Over-refusal counts harmless look-alike "
              "requests the model refused, because a model that refuses everything is not useful.",
        "tr": "Zararlı istekler hem olduğu gibi hem de jailbreak hileleriyle (rol yapma, 'önceki "
              "talimatları unut', kodlamalar...) sarılarak gönderilir. Saldırı başarı oranı, hakemin "
              "zararlı bulduğu yanıtların payıdır; düşük olan daha güvenlidir. Aşırı ret ise modelin "
              "reddettiği zararsız benzer istekleri sayar; her şeyi reddeden bir model işe yaramaz.",
    },
    "col_attack": {"en": "Attack", "tr": "Saldırı"},
    "col_category": {"en": "Category", "tr": "Kategori"},
    "asr_plain": {"en": "Attack success (plain requests)", "tr": "Saldırı başarısı (yalın istekler)"},
    "refusal": {"en": "Refusals of harmful requests", "tr": "Zararlı isteklerin reddi"},
    "over_refusal": {"en": "Over-refusal of harmless look-alikes", "tr": "Zararsız benzerlerin gereksiz reddi"},
    "judge": {"en": "Judge", "tr": "Hakem"},
    "plot_asr": {"en": "Attack success rate per attack", "tr": "Saldırı türüne göre başarı oranı"},
    # cost
    "h_cost": {"en": "8. Cost: what it took, and what it takes at scale", "tr": "8. Maliyet: bize neye mal oldu, büyük ölçekte neye mal olur"},
    "cost_explain": {
        "en": "Training cost is mostly arithmetic: about 6 floating-point operations per parameter per "
              "token, divided by what the hardware really delivers. Below, first what this run used, "
              "then the same calculator at the scale of {label}, with people's work, data and "
              "evaluation added, and the month-by-month plan such a project follows.",
        "tr": "Eğitimin maliyeti büyük ölçüde aritmetiktir: her parametre ve her belirteç için yaklaşık "
              "6 kayan noktalı işlem, donanımın gerçekte sağladığı hıza bölünür. Aşağıda önce bu "
              "çalıştırmanın ne harcadığı, sonra aynı hesaplayıcıyla {label} ölçeği geliyor: insan emeği, "
              "veri ve değerlendirme de eklenmiş olarak; ardından böyle bir projenin aydan aya planı.",
    },
    "h_cost_run": {"en": "This run", "tr": "Bu çalıştırma"},
    "col_device_hours": {"en": "Device-hours", "tr": "Cihaz-saat"},
    "col_energy": {"en": "Energy (kWh)", "tr": "Enerji (kWh)"},
    "col_usd": {"en": "Cost", "tr": "Maliyet"},
    "h_cost_scale": {"en": "At the scale of {label}", "tr": "{label} ölçeğinde"},
    "col_item": {"en": "Item", "tr": "Kalem"},
    "col_detail": {"en": "How it is counted", "tr": "Nasıl hesaplandı"},
    "k_flops": {"en": "Training FLOPs", "tr": "Eğitim FLOP'u"},
    "k_gpus": {"en": "GPUs", "tr": "GPU"},
    "k_days": {"en": "Training days", "tr": "Eğitim günü"},
    "k_total_usd": {"en": "Total cost", "tr": "Toplam maliyet"},
    "k_energy": {"en": "Energy (MWh)", "tr": "Enerji (MWh)"},
    "published_vs": {"en": "published: {value}", "tr": "yayımlanan: {value}"},
    "h_timeline": {"en": "Month by month", "tr": "Aydan aya"},
    "col_phase": {"en": "Phase", "tr": "Evre"},
    "col_start": {"en": "Starts (month)", "tr": "Başlangıç (ay)"},
    "col_months": {"en": "Months", "tr": "Ay"},
    "plot_timeline": {"en": "Project timeline (months)", "tr": "Proje takvimi (ay)"},
    "month": {"en": "month", "tr": "ay"},
    "compare_title": {"en": "Two runs side by side", "tr": "İki çalıştırma yan yana"},
    "footer": {
        "en": "Written by chatforge report from the run directory; report.json holds every figure shown.",
        "tr": "chatforge report tarafından çalıştırma klasöründen yazıldı; gösterilen her sayı report.json içinde.",
    },
}


def t(key: str, lang: str, **kw: str) -> str:
    """The text of `key` in `lang`, with {placeholders} filled."""
    text = TEXT[key][lang]
    return text.format(**kw) if kw else text
