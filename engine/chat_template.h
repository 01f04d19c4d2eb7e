#pragma once
// ChatML as MiniCPM-SALA uses it (docs/model.md §7):
//   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
// Thinking on: the model begins its turn with <think>. Thinking off: the turn is pre-filled with an
// empty think block "<think>\n\n</think>\n\n".

#include <string>
#include <vector>

namespace quire {

enum class ChatRole { system, user, assistant };

struct ChatMessage {
    ChatRole role = ChatRole::user;
    std::string content;
};

// A piece of a rendered prompt: either text, or a special token named by its content.
struct PromptSegment {
    enum class Kind { text, special, marker };  // marker: "<think>"-style text that may be a token
    Kind kind = Kind::text;
    std::string text;
};

struct ChatTemplateOptions {
    bool add_generation_prompt = true;
    bool thinking = true;
};

std::vector<PromptSegment> render_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {});
// The prompt as one string, exactly as the official template renders it.
std::string render_chat_text(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {});
std::string segments_text(const std::vector<PromptSegment>& segments);
const char* chat_role_name(ChatRole role);

}  // namespace quire
