// "Don't show these": adds a category to the user's opted_out_categories. Delivery
// enforces it for every later message. The list is read, extended and written back with
// update_mask ["opted_out_categories"], so the user's other preferences are untouched.

import { withRetry } from "./retry";
import type { TokenSource } from "./token";
import type { DeliveryClient } from "./transport";

export async function muteCategory(client: DeliveryClient, tokens: TokenSource, category: string): Promise<void> {
  if (!category || category.length > 64) throw new RangeError("Herald: a category is 1 to 64 characters");
  const current = await withRetry(() => client.getPreferences({}), { attempts: 3, tokens });
  const categories = current.preferences?.optedOutCategories ?? [];
  if (categories.includes(category)) return;
  await withRetry(
    () =>
      client.updatePreferences({
        preferences: { optedOutCategories: [...categories, category] },
        updateMask: { paths: ["opted_out_categories"] },
      }),
    { attempts: 3, tokens },
  );
}
