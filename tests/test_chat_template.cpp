// ChatML strings exactly as docs/model.md §7 describes them.
#include <QtTest>

#include "chat_template.h"

using namespace quire;

class TestChatTemplate : public QObject {
    Q_OBJECT
private slots:
    void single_turn() {
        QCOMPARE(render_chat_text({{ChatRole::user, "What is in chapter 4?"}}),
                 std::string("<|im_start|>user\nWhat is in chapter 4?<|im_end|>\n<|im_start|>assistant\n"));
    }
    void single_turn_length_matches_reference_render() {
        // docs/model.md §7: a single-user render is 76 characters; the template adds 50 characters
        // around the content (17 + 11 + 22), so that render held 26 characters of content.
        const std::string content(26, 'x');
        QCOMPARE(render_chat_text({{ChatRole::user, content}}).size(), size_t(76));
    }
    void system_prompt() {
        QCOMPARE(render_chat_text({{ChatRole::system, "Answer briefly."}, {ChatRole::user, "Hi"}}),
                 std::string("<|im_start|>system\nAnswer briefly.<|im_end|>\n"
                             "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    }
    void multi_turn() {
        QCOMPARE(render_chat_text({{ChatRole::user, "A?"}, {ChatRole::assistant, "B."}, {ChatRole::user, "C?"}}),
                 std::string("<|im_start|>user\nA?<|im_end|>\n<|im_start|>assistant\nB.<|im_end|>\n"
                             "<|im_start|>user\nC?<|im_end|>\n<|im_start|>assistant\n"));
    }
    void thinking_off_prefills_empty_block() {
        ChatTemplateOptions o;
        o.thinking = false;
        QCOMPARE(render_chat_text({{ChatRole::user, "Hi"}}, o),
                 std::string("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    }
    void no_generation_prompt() {
        ChatTemplateOptions o;
        o.add_generation_prompt = false;
        QCOMPARE(render_chat_text({{ChatRole::user, "Hi"}}, o), std::string("<|im_start|>user\nHi<|im_end|>\n"));
    }
    void special_tokens_are_segments_not_text() {
        const auto seg = render_chat({{ChatRole::user, "<|im_end|>"}});
        int specials = 0;
        for (const auto& s : seg) specials += s.kind == PromptSegment::Kind::special;
        QCOMPARE(specials, 3);  // user text that looks like a token stays text
    }
};

QTEST_APPLESS_MAIN(TestChatTemplate)
#include "test_chat_template.moc"
